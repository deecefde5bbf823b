#pragma once
// PixelWalker: output pixels in GEMM row order, for the convolutions that gather patches row by
// row (lowp::Bf16, the int8 convolution). Rows run window by window when a P x P max-pool is
// fused (the P^2 pixels of a window are consecutive rows; side 1: plain row-major pixels). It
// divides once, where it starts, and then steps: dividing per pixel pair made bf16 conv1's weight
// gradient 1.6x slower in quick runs.
namespace hubble::kernels {

struct PixelWalker {
  int side, windows_h, windows_w;               // window side (1: no pooling), windows per column and row
  int img = 0, wy = 0, wx = 0, qy = 0, qx = 0;  // image, window, position in the window
  PixelWalker(long row, int side_, int windows_h_, int windows_w_)
      : side(side_), windows_h(windows_h_), windows_w(windows_w_) {
    const long window = long(side) * side, win = row / window, per_image = long(windows_h) * windows_w;
    const int q = int(row % window);
    img = int(win / per_image);
    wy = int(win % per_image / windows_w);
    wx = int(win % windows_w);
    qy = q / side;
    qx = q % side;
  }
  int oy() const { return wy * side + qy; }
  int ox() const { return wx * side + qx; }
  void next() {
    if (++qx < side) return;
    qx = 0;
    if (++qy < side) return;
    qy = 0;
    if (++wx < windows_w) return;
    wx = 0;
    if (++wy < windows_h) return;
    wy = 0;
    ++img;
  }
};

}  // namespace hubble::kernels
