// expect: Conv2D: kernel larger than its input
// After three pools a 32x32 input is 3x3: a 5x5 kernel cannot fit.
#include "hubble/hubble.hpp"
using namespace hubble;
using Net = Sequential<Input<32, 32, 3>, Conv2D<8, 3>, MaxPool<2>, Conv2D<8, 3>, MaxPool<2>, Conv2D<8, 5>, Flatten, Dense<10>>;
int main() { Net net; }
