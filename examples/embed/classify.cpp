// Classifies one picture with a trained hubble checkpoint:  classify CHECKPOINT IMAGE
#define STB_IMAGE_IMPLEMENTATION  // stb_image's code, compiled in this one file
#include <stb_image.h>

#include <hubble/model.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) { std::cerr << "usage: classify CHECKPOINT IMAGE\n"; return 2; }
  try {
    const hubble::Model model = hubble::Model::load(argv[1]);  // any registered network, e.g. PaperNet
    int w = 0, h = 0, channels = 0;
    stbi_uc* pixels = stbi_load(argv[2], &w, &h, &channels, 3);  // PNG, JPEG, ... as RGB
    if (!pixels) throw hubble::Error(std::string(argv[2]) + ": " + stbi_failure_reason());
    const double crop = std::stod(model.metadata("model/crop_fraction", "1"));  // the training crop
    const auto input = hubble::prepare_image(pixels, w, h, 3, model.input_height(), crop);
    stbi_image_free(pixels);
    const std::vector<float> p = model.predict(input);  // one probability per class
    const auto best = std::max_element(p.begin(), p.end()) - p.begin();
    std::cout << model.class_names()[best] << " " << 100 * p[best] << "%\n";
  } catch (const std::exception& e) {
    std::cerr << "classify: " << e.what() << "\n";
    return 1;
  }
}
