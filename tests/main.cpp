// The doctest runner; the test cases live in the test_*.cpp files beside it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
