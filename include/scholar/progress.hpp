// scholar/progress.hpp: progress of long work and log messages, through callbacks the host
// application owns.
//
// scholar never writes to stderr on its own. Long work (training, index builds, tokenizer
// training) reports progress events, and the rare message (a weight kept in f32 on export, say)
// goes to a log callback. By default progress is drawn as a bar on stderr, and warnings are written
// there; an application that owns its output sets its own callbacks:
//
//   scholar::set_progress_callback([](const scholar::ProgressEvent& e) {
//     my_ui.update(e.label, e.done, e.total);
//   });
//   scholar::set_log_callback([](scholar::LogLevel level, std::string_view message) {
//     my_log(level, message);
//   });
//
// The default bar: on a terminal it redraws one line ("train  42% [========>           ] 420/1000
// step  12.3 step/s  ETA 47s  loss 3.21"); elsewhere (a log file, CI) it prints a plain line about
// every 10% or 30 s.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace scholar {

// --- progress
// ---------------------------------------------------------------------------------------

/// One report of a long piece of work.
struct ProgressEvent {
  std::string_view label;  ///< what is running: "train", "index", ...
  std::string_view unit;   ///< what is counted: "step", "vec", ...
  int64_t done = 0;        ///< units finished
  int64_t total = 0;       ///< units in all; <= 0 if unknown
  double elapsed_seconds = 0;
  std::string_view detail;  ///< free text after the bar ("loss 3.21")
  bool finished = false;    ///< the last event of this piece of work
};

/// Receives progress events. Called on the thread doing the work; the event's strings are valid
/// only during the call (copy what you keep).
using ProgressCallback = std::function<void(const ProgressEvent&)>;

/// Sends every progress event of the process to `cb` (an empty function restores the default bar
/// on stderr). Thread-safe; applies to progress reports that start afterwards.
void set_progress_callback(ProgressCallback cb);

/// The process-wide callback (empty while the default is in force).
ProgressCallback progress_callback();

/// Reports the progress of one piece of work: to the callback it was given, else to the process
/// callback, else as a bar drawn on `out` (stderr by default).
///
///   ProgressBar bar("train", total_steps, "step");
///   for (...) bar.update(step, "loss 3.21");
///   bar.finish();
///
/// Thread-safety: use from one thread.
class ProgressBar {
 public:
  /// total <= 0 means unknown (no percentage or ETA).
  ProgressBar(std::string label, int64_t total, std::string unit = "it", ProgressCallback cb = {});
  /// Always draws on `out` (no callback).
  ProgressBar(std::string label, int64_t total, std::string unit, std::FILE* out);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Reports `done` units finished, with optional text after the bar.
  void update(int64_t done, const std::string& extra = "");
  /// Reports the final state (also done by the destructor).
  void finish(const std::string& extra = "");
  /// Seconds since construction.
  double elapsed() const;

 private:
  void emit(bool final);
  void draw(bool final);
  std::string label_, unit_, extra_;
  int64_t total_, done_ = 0;
  ProgressCallback cb_;
  std::FILE* out_ = nullptr;
  bool tty_ = false, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_decile_ = -1;
};

// --- log
// --------------------------------------------------------------------------------------------

enum class LogLevel : uint8_t { debug, info, warning, error };

/// "debug", "info", "warning" or "error".
std::string_view log_level_name(LogLevel level);

/// Receives scholar's messages. May be called from any thread scholar runs on.
using LogCallback = std::function<void(LogLevel, std::string_view message)>;

/// Sends every message to `cb` (an empty function restores the default: warnings and errors on
/// stderr as "scholar: warning: ..."). Thread-safe.
void set_log_callback(LogCallback cb);

/// Reports a message through the log callback.
void log(LogLevel level, std::string_view message);

}  // namespace scholar
