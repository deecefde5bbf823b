// expect: MaxPool: window larger than its input
// shape: Shape<4, 4, 4>
#include "hubble/hubble.hpp"
using namespace hubble;
using Net = Sequential<Input<8, 8, 1>, Conv2D<4, 5>, MaxPool<5>, Flatten, Dense<2>>;
int main() { Net net; }
