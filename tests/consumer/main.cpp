// Builds a small network from the installed headers and trains it for a few steps.
#include <hubble/hubble.hpp>

#include <iostream>

int main() {
  using namespace hubble;
  using Net = Sequential<Input<8, 8, 1>, Conv2D<4, 3>, ReLU, MaxPool<2>, Flatten, Dense<2>, Softmax>;
  static_assert(Net::parameter_count == 4 * 9 + 4 + 36 * 2 + 2);
  Net net(1);
  Tensor<float> x(4, 8, 8, 1);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) / 7.0f;
  const int labels[] = {0, 1, 0, 1};
  Adam<float> adam;
  const double first = net.train_step(x, labels, adam).loss;
  double last = first;
  for (int i = 0; i < 50; ++i) last = net.train_step(x, labels, adam).loss;
  std::cout << "consumer: loss " << first << " -> " << last << "\n";
  return last < first ? 0 : 1;
}
