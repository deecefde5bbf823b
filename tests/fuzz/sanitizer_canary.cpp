// ctest sanitize.canary.* (HUBBLE_SANITIZE builds): commits one error of the kind named on the
// command line. With the sanitizers on, the program stops with their report (which the test
// expects); without them it would print "not caught" and exit 0, and the test fails.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  const char* which = argc > 1 ? argv[1] : "";
  volatile int index = 8;  // volatile: the compiler cannot prove the error and drop it
  int result = 0;
  if (std::strcmp(which, "heap_overflow") == 0) {
    std::vector<int> v(8, 1);
    const int* data = v.data();
    result = data[index];  // one past the end
  } else if (std::strcmp(which, "float_cast_overflow") == 0) {
    volatile double big = 1e20;
    result = int(big);  // no int holds 1e20
  } else if (std::strcmp(which, "signed_overflow") == 0) {
    volatile int max = 2147483647;
    result = max + index;
  } else {
    std::fprintf(stderr, "usage: sanitizer_canary heap_overflow|float_cast_overflow|signed_overflow\n");
    return 2;
  }
  std::printf("not caught: %s (result %d)\n", which, result);
  return 0;
}
