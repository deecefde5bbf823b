#!/usr/bin/python3
"""Writes torch_reference.h5 (the build makes it in its tests folder): a PyTorch (float64) forward/backward/Adam reference
for a narrow variant of the paper's network, in hubble's layouts, for tests/test_torch_reference.cpp.

The network keeps every layer type of the paper's net and its 5x5 stride-2 first convolution:
  hubble: Network<double, Input<36,36,3>, Conv2D<8,5,2>, ReLU, MaxPool<2>, Conv2D<16,3,1,Same>, ReLU,
                  MaxPool<2>, Flatten, Dropout<0.1>, Dense<32>, ReLU, Dropout<0.25>, Dense<10>, Softmax>
  shapes: 36x36x3 -> 16x16x8 -> 8x8x8 -> 8x8x16 -> 4x4x16 -> 256 -> 32 -> 10
Dropout cannot be matched across frameworks in train mode, so everything is computed with dropout
off (eval); the hubble test runs forward/backward in Mode::eval as well.

Layouts written (all float64):
  input                 [4, 36, 36, 3]  NHWC
  labels                [4]             int32
  <layer>/kernel        conv: [K, K, Cin, F] (torch [F, Cin, K, K] permuted);  dense: [In, Out] (torch W^T)
  <layer>/bias          [F] / [Out]     small random, non-zero, so the bias paths are tested
  logits, probabilities [4, 10]
  loss                  [1]             mean categorical cross-entropy
  grad/<name>           dLoss/d<name>, same layout as the parameter
  grad/input            dLoss/d(input), NHWC
  after_adam/<name>     parameters after one Adam step (lr 1e-3, betas 0.9/0.999, eps 1e-8: PyTorch's)
  after_adam3/<name>    parameters after three Adam steps on the same batch
  loss_step/<i>         (as loss_steps [3]) the loss before each of the three steps
The flatten is channels-last (NCHW -> NHWC permute before flattening) so dense_1's rows line up
with hubble's Flatten.

Run from the repository root:  /usr/bin/python3 scripts/make_torch_reference.py --out FILE
(tests/CMakeLists.txt runs it at build time into the build's tests folder).
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH, H, W, C, CLASSES = 4, 36, 36, 3, 10
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)


class NarrowPaperNet(nn.Module):
    """The paper's layer sequence with fewer filters and units; channels-last flatten."""

    def __init__(self):
        super().__init__()
        self.conv2d_1 = nn.Conv2d(C, 8, 5, stride=2)              # valid
        self.conv2d_2 = nn.Conv2d(8, 16, 3, stride=1, padding=1)  # 'same' for K=3, S=1
        self.dense_1 = nn.Linear(4 * 4 * 16, 32)
        self.dense_2 = nn.Linear(32, CLASSES)
        self.dropout_1 = nn.Dropout(0.1)
        self.dropout_2 = nn.Dropout(0.25)

    def forward(self, x_nhwc):
        x = x_nhwc.permute(0, 3, 1, 2)                            # NHWC -> NCHW
        x = F.max_pool2d(F.relu(self.conv2d_1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2d_2(x)), 2)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)         # flatten in NHWC order
        x = self.dropout_1(x)
        x = F.relu(self.dense_1(x))
        x = self.dropout_2(x)
        return self.dense_2(x)                                    # logits; softmax in the loss


def hubble_layout(name, t):
    """A torch parameter in hubble's layout."""
    t = t.detach()
    if name.endswith("kernel"):
        if t.dim() == 4:
            return t.permute(2, 3, 1, 0).contiguous()  # [F, Cin, K, K] -> [K, K, Cin, F]
        return t.t().contiguous()                       # [Out, In] -> [In, Out]
    return t


def named_params(net):
    """(hubble name, torch parameter) in hubble's Network::parameters() order."""
    out = []
    for layer in ("conv2d_1", "conv2d_2", "dense_1", "dense_2"):
        m = getattr(net, layer)
        out.append((layer + "/kernel", m.weight))
        out.append((layer + "/bias", m.bias))
    return out


def decision_margin(net, x_nhwc):
    """The smallest |ReLU input| and the smallest gap between a max-pool window's two largest values."""
    def pool_gap(a):
        n, c, h, w = a.shape
        win = a.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
        top = win.topk(2, dim=-1).values
        alive = top[..., 0] > 0  # all-zero (dead) windows tie harmlessly: zero gradient either way
        return (top[..., 0] - top[..., 1])[alive].min().item()
    with torch.no_grad():
        z1 = net.conv2d_1(x_nhwc.permute(0, 3, 1, 2))
        a1 = F.relu(z1)
        z2 = net.conv2d_2(F.max_pool2d(a1, 2))
        a2 = F.relu(z2)
        z3 = net.dense_1(F.max_pool2d(a2, 2).permute(0, 2, 3, 1).reshape(x_nhwc.shape[0], -1))
        # A zero beside a positive value is covered by the ReLU margin, so zeros are masked out.
        gaps = [pool_gap(a1.masked_fill(a1 == 0, -1e9)), pool_gap(a2.masked_fill(a2 == 0, -1e9))]
        return min(z1.abs().min().item(), z2.abs().min().item(), z3.abs().min().item(), *gaps)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20240611)
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    torch.set_default_dtype(torch.float64)

    net = NarrowPaperNet()
    with torch.no_grad():
        # Glorot-uniform kernels (as Keras/hubble) and small non-zero biases.
        for name, p in named_params(net):
            if name.endswith("kernel"):
                nn.init.xavier_uniform_(p)
            else:
                p.uniform_(-0.1, 0.1)
    net.eval()  # dropout off

    # Centred inputs in [-1, 1): with all-positive inputs a filter with a negative sum is dead
    # everywhere and its gradient would be zero (untested).
    x = (torch.rand(BATCH, H, W, C) * 2 - 1).requires_grad_(True)
    labels = torch.tensor([3, 7, 0, 9], dtype=torch.long)

    params0 = {n: hubble_layout(n, p).clone() for n, p in named_params(net)}
    net_copy = NarrowPaperNet()
    net_copy.load_state_dict(net.state_dict())
    logits = net(x)
    loss = F.cross_entropy(logits, labels)  # mean categorical cross-entropy of softmax(logits)
    loss.backward()
    probabilities = torch.softmax(logits, dim=1)
    grads = {n: hubble_layout(n, p.grad).clone() for n, p in named_params(net)}
    grad_input = x.grad.detach().clone()

    # Three Adam steps on the same batch (still dropout off); keep the weights after 1 and 3.
    opt = torch.optim.Adam([p for _, p in named_params(net)], **ADAM)
    after = {}
    loss_steps = []
    for step in range(1, 4):
        opt.zero_grad()
        l = F.cross_entropy(net(x.detach()), labels)
        loss_steps.append(l.item())
        l.backward()
        opt.step()
        if step in (1, 3):
            after[step] = {n: hubble_layout(n, p).clone() for n, p in named_params(net)}

    # The float32 check in the test runs the same fixture in single precision: make sure no ReLU
    # input or max-pool runner-up is so close to its decision point that rounding could flip it.
    margin = decision_margin(net_copy, x.detach())
    print(f"smallest ReLU/max-pool decision margin: {margin:.3g}")
    assert margin > 1e-5, f"a ReLU/max-pool decision is within {margin:g} of a tie; pick another seed"

    # Sanity: the Adam steps reproduce the first loss and the reference is non-trivial.
    assert abs(loss_steps[0] - loss.item()) < 1e-12
    for n, g in grads.items():
        assert g.abs().max() > 1e-6, f"gradient of {n} is (nearly) zero; pick another seed"

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f["input"] = x.detach().numpy()
        f["labels"] = labels.numpy().astype(np.int32)
        for n, v in params0.items():
            f[n] = v.numpy()
            f["grad/" + n] = grads[n].numpy()
            f["after_adam/" + n] = after[1][n].numpy()
            f["after_adam3/" + n] = after[3][n].numpy()
        f["grad/input"] = grad_input.numpy()
        f["logits"] = logits.detach().numpy()
        f["probabilities"] = probabilities.detach().numpy()
        f["loss"] = np.array([loss.item()])
        f["loss_steps"] = np.array(loss_steps)
        attrs = {}
        attrs["torch_version"] = torch.__version__
        attrs["numpy_version"] = np.__version__
        attrs["command"] = "/usr/bin/python3 " + " ".join(sys.argv)
        attrs["seed"] = str(args.seed)
        attrs["architecture"] = ("Input<36,36,3> Conv2D<8,5,2,valid> ReLU MaxPool<2,2> Conv2D<16,3,1,same> ReLU "
                                   "MaxPool<2,2> Flatten Dropout(eval) Dense<32> ReLU Dropout(eval) Dense<10> Softmax")
        attrs["adam"] = "lr=1e-3 beta1=0.9 beta2=0.999 eps=1e-8 (torch.optim.Adam)"
        attrs["dropout"] = "off (eval) for every quantity"
        for k, v in attrs.items():
            f.attrs[k] = np.bytes_(v)  # fixed-length strings: hubble's h5::File::attribute reads these
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: loss {loss.item():.12f}, losses over 3 Adam steps {loss_steps}")


if __name__ == "__main__":
    main()
