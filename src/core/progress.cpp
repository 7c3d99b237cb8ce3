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
  std::string line = label_;
  if (total_ > 0) {
    const double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    char head[32];
    std::snprintf(head, sizeof head, " %3d%% [", static_cast<int>(frac * 100));
    line += head;
    const int width = 24, fill = static_cast<int>(frac * width);
    for (int i = 0; i < width; ++i) line += i < fill ? '=' : (i == fill ? '>' : ' ');
    line += "] ";
    line += std::to_string(done_) + "/" + std::to_string(total_);
  } else {
    line += " " + std::to_string(done_);
  }
  char tail[96];
  std::snprintf(tail, sizeof tail, " %s  %.3g %s/s", unit_.c_str(), rate, unit_.c_str());
  line += tail;
  if (total_ > 0 && !final && rate > 0)
    line += "  ETA " + duration(static_cast<double>(total_ - done_) / rate);
  if (final) line += "  in " + duration(t);
  if (!extra_.empty()) line += "  " + extra_;
  if (tty_)
    std::fprintf(out_, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  else
    std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

}  // namespace scholar
