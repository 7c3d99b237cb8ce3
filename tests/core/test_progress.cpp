// Progress and log messages go through callbacks the application can replace.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "scholar/progress.hpp"

using namespace scholar;

namespace {
struct Seen {
  std::string label, unit, detail;
  int64_t done, total;
  bool finished;
};
}  // namespace

TEST_CASE("progress goes to the process callback, or to a bar's own", "[progress]") {
  std::vector<Seen> all, own;
  set_progress_callback([&](const ProgressEvent& e) {
    all.push_back({std::string(e.label), std::string(e.unit), std::string(e.detail), e.done,
                   e.total, e.finished});
  });
  {
    ProgressBar bar("train", 10, "step");
    bar.update(3, "loss 2.5");
    bar.update(10);
    bar.finish("done");
    bar.finish();  // once only
  }
  {
    ProgressBar bar("index", -1, "vec", [&](const ProgressEvent& e) {
      own.push_back({std::string(e.label), std::string(e.unit), std::string(e.detail), e.done,
                     e.total, e.finished});
    });
    bar.update(7);
  }  // the destructor finishes it
  set_progress_callback({});
  CHECK(!progress_callback());
  REQUIRE(all.size() == 3);
  CHECK(all[0].label == "train");
  CHECK(all[0].unit == "step");
  CHECK(all[0].done == 3);
  CHECK(all[0].total == 10);
  CHECK(all[0].detail == "loss 2.5");
  CHECK_FALSE(all[1].finished);
  CHECK(all[2].finished);
  CHECK(all[2].detail == "done");
  REQUIRE(own.size() == 2);
  CHECK(own[1].done == 7);
  CHECK(own[1].finished);
  CHECK(own[1].total == -1);
}

TEST_CASE("log messages go to the log callback with their level", "[progress]") {
  std::vector<std::pair<LogLevel, std::string>> got;
  set_log_callback([&](LogLevel l, std::string_view m) { got.emplace_back(l, std::string(m)); });
  log(LogLevel::warning, "kept in f32");
  log(LogLevel::debug, "details");
  set_log_callback({});
  log(LogLevel::debug, "to nobody");  // the default shows only warnings and errors
  REQUIRE(got.size() == 2);
  CHECK(got[0] == std::pair<LogLevel, std::string>{LogLevel::warning, "kept in f32"});
  CHECK(got[1].first == LogLevel::debug);
  CHECK(log_level_name(LogLevel::error) == "error");
}
