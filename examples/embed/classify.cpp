// Classifies one picture with a trained hubble checkpoint:  classify CHECKPOINT IMAGE
#include <hubble/io/picture.hpp>  // io::read_picture: PNG, JPEG, ... with named errors
#include <hubble/model.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) { std::cerr << "usage: classify CHECKPOINT IMAGE\n"; return 2; }
  try {
    const hubble::Model model = hubble::Model::load(argv[1]);  // any registered network, e.g. PaperNet
    const hubble::io::Picture pic = hubble::io::read_picture(argv[2]);
    const double crop = std::stod(model.metadata("model/crop_fraction", "1"));  // the training crop
    const auto input = hubble::prepare_image(pic.pixels.data(), pic.width, pic.height, pic.channels,
                                             model.input_height(), crop);
    const std::vector<float> p = model.predict(input);  // one probability per class
    const auto best = std::max_element(p.begin(), p.end()) - p.begin();
    std::cout << model.class_names()[best] << " " << 100 * p[best] << "%\n";
  } catch (const std::exception& e) {
    std::cerr << "classify: " << e.what() << "\n";
    return 1;
  }
}
