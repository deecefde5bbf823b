// expect: Dense: input is not flat, put Flatten before Dense
// shape: Shape<14, 14, 8>
#include "hubble/hubble.hpp"
using namespace hubble;
using Net = Sequential<Input<16, 16, 3>, Conv2D<8, 3>, ReLU, Dense<10>, Softmax>;
int main() { Net net; }
