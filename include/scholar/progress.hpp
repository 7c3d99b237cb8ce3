// scholar/progress.hpp: a progress bar for long work (training, tokenizer training, generation).
//
//   ProgressBar bar("train", total_steps, "step");
//   for (...) bar.update(step, "loss 3.21");
//   bar.finish();
//
// On a terminal it redraws one line: "train  42% [========>           ] 420/1000 step  12.3 step/s
// ETA 47s  loss 3.21". Elsewhere (a log file, CI) it prints a plain line about every 10% or 30 s.
// Thread-safety: use from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace scholar {

class ProgressBar {
 public:
  /// total <= 0 means unknown (no percentage or ETA). Output goes to `out` (stderr by default).
  ProgressBar(std::string label, int64_t total, std::string unit = "it", std::FILE* out = stderr);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Reports `done` units finished, with optional text after the bar.
  void update(int64_t done, const std::string& extra = "");
  /// Draws the final state and ends the line (also done by the destructor).
  void finish(const std::string& extra = "");
  /// Seconds since construction.
  double elapsed() const;

 private:
  void draw(bool final);
  std::string label_, unit_, extra_;
  int64_t total_, done_ = 0;
  std::FILE* out_;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_decile_ = -1;
};

}  // namespace scholar
