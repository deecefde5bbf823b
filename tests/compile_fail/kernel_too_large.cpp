// expect: Conv2D: kernel larger than its input
// shape: Shape<2, 2, 8>
// After two convs and pools a 16x16 input is 2x2: a 5x5 kernel cannot fit.
#include "hubble/hubble.hpp"
using namespace hubble;
using Net = Sequential<Input<16, 16, 3>, Conv2D<8, 3>, MaxPool<2>, Conv2D<8, 3>, MaxPool<2>, Conv2D<8, 5>, Flatten, Dense<10>>;
int main() { Net net; }
