// expect: D4Conv: input channels must be a multiple of 8
// shape: Shape<8, 8, 3>
#include "hubble/hubble.hpp"
using namespace hubble;
using Net = Sequential<Input<8, 8, 3>, D4Conv<2, 3>, D4GroupPool, GlobalAvgPool, Dense<2>>;
int main() { Net net; }
