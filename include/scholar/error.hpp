// scholar/error.hpp: the exceptions scholar throws.
//
// Every error is a scholar::Error (a std::runtime_error), so one catch clause handles them all; the
// subclasses let callers tell a bad shape from a bad file. Messages name the operation, what was
// expected and what was found, e.g. "add: shapes [2, 3] and [4] cannot be broadcast".
#pragma once

#include <charconv>
#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace scholar {

/// Base of every exception thrown by scholar.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Tensor shapes or ranks that an operation cannot accept.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// An index, slice or range outside the bounds of what it indexes.
class IndexError : public Error {
 public:
  using Error::Error;
};

/// A parameter value that is not allowed (non-finite, negative where positive is needed, ...).
class ValueError : public Error {
 public:
  using Error::Error;
};

/// A file or buffer that is not in the format it claims to be (bad magic, offsets out of range,
/// ...).
class FormatError : public Error {
 public:
  using Error::Error;
};

/// The operating system refused a file operation (open, read, write, rename).
class IoError : public Error {
 public:
  using Error::Error;
};

namespace detail {

inline void append_piece(std::string& out, std::string_view s) {
  out.append(s);
}
inline void append_piece(std::string& out, const char* s) {
  out.append(s);
}
inline void append_piece(std::string& out, const std::string& s) {
  out.append(s);
}
inline void append_piece(std::string& out, char c) {
  out.push_back(c);
}
inline void append_piece(std::string& out, bool b) {
  out.append(b ? "true" : "false");
}
template <std::integral I>
requires(!std::same_as<I, char> && !std::same_as<I, bool>) void append_piece(std::string& out,
                                                                             I v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}
template <std::floating_point F>
void append_piece(std::string& out, F v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, static_cast<double>(v));
  out.append(buf, r.ptr);
}

/// Concatenates strings, characters and numbers into one message.
template <class... Args>
std::string str_cat(const Args&... args) {
  std::string out;
  (append_piece(out, args), ...);
  return out;
}

/// Reports a broken internal invariant (file, line, the failed condition and a message) on stderr
/// and aborts. Only a bug in scholar can get here: user errors throw.
[[noreturn]] void assert_fail(const char* condition, const char* file, int line,
                              const std::string& message);

}  // namespace detail

/// Throws E with the concatenation of args as its message.
template <class E = Error, class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw E(detail::str_cat(args...));
}

}  // namespace scholar

/// Checks an internal invariant: a condition that only a bug in scholar can make false (a kernel
/// table entry missing, an index the caller already validated out of range). Failure prints the
/// condition, the place and the message pieces (str_cat arguments) and aborts. User errors (bad
/// arguments, bad files) are never asserted: they throw a scholar::Error subclass.
#define SCHOLAR_ASSERT(cond, ...)                                                                \
  do {                                                                                           \
    if (!(cond)) [[unlikely]]                                                                    \
      ::scholar::detail::assert_fail(#cond, __FILE__, __LINE__,                                  \
                                     ::scholar::detail::str_cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (false)

/// SCHOLAR_ASSERT in debug builds (NDEBUG not defined); nothing, not even the condition's
/// evaluation, in release builds. For checks in hot loops.
#ifdef NDEBUG
#define SCHOLAR_DEBUG_ASSERT(cond, ...) \
  do {                                  \
  } while (false)
#else
#define SCHOLAR_DEBUG_ASSERT(cond, ...) SCHOLAR_ASSERT(cond __VA_OPT__(, ) __VA_ARGS__)
#endif
