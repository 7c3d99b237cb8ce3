#include "scholar/progress.hpp"

#include <unistd.h>

#include <cmath>

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
  draw(true);
  finished_ = true;
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
