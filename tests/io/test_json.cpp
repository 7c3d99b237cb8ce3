// The JSON reader and writer.
#include <catch2/catch.hpp>

#include "scholar/error.hpp"
#include "scholar/io/json.hpp"

using namespace scholar;
using io::Json;

TEST_CASE("parses documents and keeps key order and exact integers", "[json]") {
  const Json j =
      Json::parse(R"( {"b": [1, 2.5, -3e2, true, null], "a": {"x": "y\u00e9\ud83d\ude00"},
                                 "big": 9007199254740993} )");
  CHECK(j.as_object()[0].first == "b");
  CHECK(j.at("b").as_array()[1].as_double() == 2.5);
  CHECK(j.at("b").as_array()[2].as_int() == -300);
  CHECK(j.at("b").as_array()[3].as_bool());
  CHECK(j.at("b").as_array()[4].is_null());
  CHECK(j.at("a").at("x").as_string() == "y\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(j.at("big").as_int() == 9007199254740993LL);
  CHECK(j.find("missing") == nullptr);
  CHECK_THROWS_WITH(j.at("missing"), Catch::Contains("missing"));
  CHECK_THROWS_WITH(j.at("a").as_array("field a"),
                    Catch::Contains("field a") && Catch::Contains("an object"));
}

TEST_CASE("dump and parse round trip, escaping control characters", "[json]") {
  Json j = Json::object();
  j.set("s", Json("tab\tquote\"nl\n\x01"));
  j.set("n", Json(0.1));
  j.set("i", Json(int64_t{-7}));
  j.set("arr", Json::array({Json(1), Json(false)}));
  const std::string text = j.dump();
  const Json back = Json::parse(text);
  CHECK(back.at("s").as_string() == "tab\tquote\"nl\n\x01");
  CHECK(back.at("n").as_double() == 0.1);
  CHECK(back.dump() == text);
  CHECK(Json::parse(j.dump(2)).dump() == text);
  Json copy = j;  // deep copy
  copy.set("i", Json(1));
  CHECK(j.at("i").as_int() == -7);
}

TEST_CASE("malformed JSON is a FormatError with the byte offset", "[json]") {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "01", "1.", "\"\\x\"",
                          "\"\\ud800\"", "\"\xff\"", "\"\xc0\x80\"", "[1] 2", "{\"a\":1,}", "-"}) {
    INFO(bad);
    CHECK_THROWS_AS(Json::parse(bad), FormatError);
  }
  CHECK_THROWS_WITH(Json::parse("[1, x]", "config.json"),
                    Catch::Contains("config.json") && Catch::Contains("byte 4"));
  std::string deep(600, '[');
  CHECK_THROWS_WITH(Json::parse(deep), Catch::Contains("nesting"));
  CHECK_THROWS_AS(Json(std::nan("")), ValueError);
}
