#pragma once
// hubble::Error and HUBBLE_CHECK: every runtime failure the user can cause (bad file, bad
// shape, bad flag) is reported as an Error whose message says what is wrong and where.
#include <sstream>
#include <stdexcept>
#include <string>

namespace hubble {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
[[noreturn]] inline void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}
}  // namespace detail

}  // namespace hubble

// HUBBLE_CHECK(cond, "message", values...): throws hubble::Error with the streamed message.
#define HUBBLE_CHECK(cond, ...)                          \
  do {                                                   \
    if (!(cond)) ::hubble::detail::fail(__VA_ARGS__);    \
  } while (0)
