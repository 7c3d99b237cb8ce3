#include "scholar/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <mutex>

namespace scholar {

namespace {
std::string duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}
}  // namespace

// --- the process-wide callbacks

namespace {
std::mutex g_callback_mutex;
ProgressCallback g_progress;
LogCallback g_log;
}  // namespace

void set_progress_callback(ProgressCallback cb) {
  std::lock_guard lock(g_callback_mutex);
  g_progress = std::move(cb);
}

ProgressCallback progress_callback() {
  std::lock_guard lock(g_callback_mutex);
  return g_progress;
}

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "?";
}

void set_log_callback(LogCallback cb) {
  std::lock_guard lock(g_callback_mutex);
  g_log = std::move(cb);
}

void log(LogLevel level, std::string_view message) {
  LogCallback cb;
  {
    std::lock_guard lock(g_callback_mutex);
    cb = g_log;
  }
  if (cb) return cb(level, message);
  if (level < LogLevel::warning) return;
  std::fprintf(stderr, "scholar: %.*s: %.*s\n", static_cast<int>(log_level_name(level).size()),
               log_level_name(level).data(), static_cast<int>(message.size()), message.data());
}

// --- ProgressBar

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, ProgressCallback cb)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      cb_(cb ? std::move(cb) : progress_callback()),
      out_(cb_ ? nullptr : stderr),
      tty_(out_ && ::isatty(::fileno(out_))),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, std::FILE* out)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      out_(out),
      tty_(out && ::isatty(::fileno(out))),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (!finished_) finish();
}

double ProgressBar::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(int64_t done, const std::string& extra) {
  done_ = done;
  extra_ = extra;
  if (cb_) return emit(false);
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (tty_) {
    if (since >= 0.1) draw(false);
    return;
  }
  const int decile = total_ > 0 ? static_cast<int>(10 * done_ / total_) : -1;
  if (decile != last_decile_ || since >= 30.0) {
    last_decile_ = decile;
    draw(false);
  }
}

void ProgressBar::finish(const std::string& extra) {
  if (finished_) return;
  if (!extra.empty()) extra_ = extra;
  finished_ = true;
  if (cb_) return emit(true);
  draw(true);
}

void ProgressBar::emit(bool final) {
  cb_(ProgressEvent{label_, unit_, done_, total_, elapsed(), extra_, final});
}

void ProgressBar::draw(bool final) {
  if (!out_) return;
  last_draw_ = std::chrono::steady_clock::now();
  const double t = elapsed();
  const double rate = t > 0 ? static_cast<double>(done_) / t : 0.0;
  // (Built with append: GCC 12 at -O3 warns falsely about operator+ on short strings.)
  std::string line;
  line.reserve(160);
  line.append(label_);
  char buf[96];
  if (total_ > 0) {
    const double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    std::snprintf(buf, sizeof buf, " %3d%% [", static_cast<int>(frac * 100));
    line.append(buf);
    const int width = 24, fill = static_cast<int>(frac * width);
    for (int i = 0; i < width; ++i) line.push_back(i < fill ? '=' : (i == fill ? '>' : ' '));
    std::snprintf(buf, sizeof buf, "] %lld/%lld", static_cast<long long>(done_),
                  static_cast<long long>(total_));
    line.append(buf);
  } else {
    std::snprintf(buf, sizeof buf, " %lld", static_cast<long long>(done_));
    line.append(buf);
  }
  std::snprintf(buf, sizeof buf, " %s  %.3g %s/s", unit_.c_str(), rate, unit_.c_str());
  line.append(buf);
  if (total_ > 0 && !final && rate > 0) {
    line.append("  ETA ");
    line.append(duration(static_cast<double>(total_ - done_) / rate));
  }
  if (final) {
    line.append("  in ");
    line.append(duration(t));
  }
  if (!extra_.empty()) {
    line.append("  ");
    line.append(extra_);
  }
  if (tty_)
    std::fprintf(out_, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  else
    std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

}  // namespace scholar
