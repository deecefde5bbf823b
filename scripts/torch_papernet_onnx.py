#!/usr/bin/python3
"""A PyTorch PaperNet, trained a few steps on galaxy10_real_train.h5, exported with torch.onnx.export;
the other side of hubble's PyTorch -> ONNX -> hubble test (tests/onnx/test_onnx.cpp).

  /usr/bin/python3 scripts/torch_papernet_onnx.py --train TRAIN.h5 --images IMAGES.h5 --count 200 \
      --out-model papernet_torch.onnx --out-probs probs.f32 [--reshape]

The model is the paper's network written the PyTorch way (NCHW, Conv2d weights [out,in,kh,kw],
nn.Linear, torch.flatten in (c,h,w) order) with hubble's geometry: valid convolutions, 5x5 stride-2
first layer, floor max-pooling. It ends in softmax so that the exported graph matches hubble's
PaperNet (hubble::Model and hubble_convert find it); eval mode, so the graph has no Dropout nodes.
--reshape flattens with x.view(x.size(0), -1) instead (PyTorch's Shape/Gather/Concat/Reshape idiom).
--out-checkpoint also writes the weights as a weights-only hubble checkpoint from h5py, the way
docs/checkpoints.md shows (plain str attributes, real shapes, checksums = "none").
Writes the probabilities PyTorch computes for the first --count images of --images (float32,
count x 10, row-major). Training uses --train only; --images is only predicted on.
"""
import argparse

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class PaperNet(nn.Module):
    def __init__(self, reshape=False):
        super().__init__()
        self.reshape = reshape
        self.conv1 = nn.Conv2d(3, 32, 5, stride=2)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 128, 3)
        self.conv4 = nn.Conv2d(128, 256, 3)
        self.drop1 = nn.Dropout(0.1)
        self.fc1 = nn.Linear(1024, 256)
        self.drop2 = nn.Dropout(0.25)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        x = x.view(x.size(0), -1) if self.reshape else torch.flatten(x, 1)
        x = self.fc2(self.drop2(F.relu(self.fc1(self.drop1(x)))))
        return F.softmax(x, dim=1)


def load(path, count):
    with h5py.File(path, "r") as f:
        images = f["images"][:count]
        labels = np.asarray(f["ans"][:count], dtype=np.int64)
    h = images.shape[1]
    o = (h - 128) // 2
    images = images[:, o:o + 128, o:o + 128, :].astype(np.float32) / np.float32(255)  # hubble's centre crop, x/255
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), torch.from_numpy(labels)


PAPERNET = ("Input<128,128,3> Conv2D<32,5,2,valid> ReLU MaxPool<2,2> Conv2D<64,3,1,valid> ReLU MaxPool<2,2> "
            "Conv2D<128,3,1,valid> ReLU MaxPool<2,2> Conv2D<256,3,1,valid> ReLU MaxPool<2,2> Flatten Dropout<0.100000> "
            "Dense<256> ReLU Dropout<0.250000> Dense<10> Softmax")


def write_checkpoint(torch_model, path):
    """docs/checkpoints.md, 'Weights-only files': the same code."""
    sd = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    conv = lambda w: np.transpose(w, (2, 3, 1, 0))                   # [out,in,kh,kw] -> [kh,kw,in,out]
    def first_dense(w, c=256, h=2, wd=2):                            # Linear after flatten of a c x h x w map
        return w.reshape(-1, c, h, wd).transpose(2, 3, 1, 0).reshape(h * wd * c, -1)  # rows (c,h,w) -> (h,w,c)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "hubble-checkpoint"
        f.attrs["format_version"] = np.int64(2)
        f.attrs["architecture"] = PAPERNET                           # the string above, exactly
        f.attrs["scalar"] = "float"
        f.attrs["checksums"] = "none"
        for i, name in enumerate(["conv1", "conv2", "conv3", "conv4"], 1):
            f[f"weights/conv2d_{i}/kernel"] = conv(sd[name + ".weight"])
            f[f"weights/conv2d_{i}/bias"] = sd[name + ".bias"]
        f["weights/dense_1/kernel"] = first_dense(sd["fc1.weight"])
        f["weights/dense_1/bias"] = sd["fc1.bias"]
        f["weights/dense_2/kernel"] = sd["fc2.weight"].T             # Linear [out,in] -> [in,out]
        f["weights/dense_2/bias"] = sd["fc2.bias"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--train", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--out-model", required=True)
    p.add_argument("--out-probs", required=True)
    p.add_argument("--reshape", action="store_true")
    p.add_argument("--out-checkpoint")
    a = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    net = PaperNet(a.reshape)
    x, y = load(a.train, 32 * a.steps)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for s in range(a.steps):
        xb, yb = x[32 * s:32 * (s + 1)], y[32 * s:32 * (s + 1)]
        opt.zero_grad()
        loss = F.nll_loss(torch.log(net(xb) + 1e-12), yb)
        loss.backward()
        opt.step()
    net.eval()
    images, _ = load(a.images, a.count)
    torch.onnx.export(net, images[:1], a.out_model, opset_version=13, input_names=["input"], output_names=["probabilities"],
                      dynamic_axes={"input": {0: "N"}, "probabilities": {0: "N"}})
    with torch.no_grad():
        probs = net(images).numpy().astype(np.float32)
    probs.tofile(a.out_probs)
    if a.out_checkpoint:
        write_checkpoint(net, a.out_checkpoint)
    print(f"trained {a.steps} steps (last loss {loss.item():.4f}); exported {a.out_model}; {len(probs)} predictions")


if __name__ == "__main__":
    main()
