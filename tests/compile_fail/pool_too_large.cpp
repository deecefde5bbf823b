// expect: MaxPool: window larger than its input
#include "hubble/hubble.hpp"
using namespace hubble;
using Net = Sequential<Input<8, 8, 1>, Conv2D<4, 5>, MaxPool<5>, Flatten, Dense<2>>;
int main() { Net net; }
