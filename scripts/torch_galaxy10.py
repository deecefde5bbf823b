#!/usr/bin/python3
"""The paper's Galaxy10 DECaLS recipe in PyTorch, as hubble implements it, to compare against.

Network (hubble's PaperNet, 654,922 parameters at crop 128):
  Input 128x128x3 -> Conv 5x5/2 x32 -> ReLU -> MaxPool 2 -> Conv 3x3 x64 -> ReLU -> MaxPool 2
  -> Conv 3x3 x128 -> ReLU -> MaxPool 2 -> Conv 3x3 x256 -> ReLU -> MaxPool 2
  -> Flatten (1024, channels-last order as Keras/hubble) -> Dropout 0.1 -> Dense 256 -> ReLU
  -> Dropout 0.25 -> Dense 10 -> softmax (fused into the categorical cross-entropy)
  valid padding; Keras-like Glorot-uniform kernels and zero biases.
Data: centre crop (crop x crop) of each image (rows/cols [(256-crop)/2, (256-crop)/2 + crop),
  as hubble::data::load_galaxy10), scaled x/255. The training set is multiplied by 4 with
  rotations by 0/90/180/270 degrees (numpy.rot90 = hubble's rot90): every training image appears
  in all 4 rotations every epoch, the 4N views shuffled together.
Training: Adam (lr 1e-3, betas 0.9/0.999, eps 1e-7 as Keras), batch 32 (the last batch of an epoch
  may be smaller), mean categorical cross-entropy, 50 epochs.
Validation: a stratified split of --data with hubble's own algorithm and RNG (xoshiro256**,
  data/split.hpp), so for the same seed and fraction it holds out exactly the images hubble does.

Prints per-epoch train loss/accuracy (and validation), and at the end scores --test-data once:
accuracy, macro precision/recall/F1 (scikit-learn's zero_division=0 convention, as hubble's
metrics), per-class scores and the confusion matrix (rows: true class, columns: predicted).
Writes <out>/metrics.json (keys as hubble's metrics JSON: accuracy, macro_precision, macro_recall,
macro_f1, count, per_class, class_names, confusion_matrix, plus evaluated_on, history, config and,
with --eval-every-epoch, test_accuracy_per_epoch).

Examples (run with Debian's python, which has torch):
  /usr/bin/python3 scripts/torch_galaxy10.py --data ../shared/data/galaxy10_real_train.h5 \\
      --test-data ../shared/data/galaxy10_real_holdout.h5 --val-split 0 --out runs/torch_paper
  /usr/bin/python3 scripts/torch_galaxy10.py --data ../shared/data/galaxy10_real_train.h5 \\
      --max-images 100 --epochs 1 --out /tmp/smoke          # smoke test
"""
import argparse
import json
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CLASS_NAMES = ["Disturbed", "Merging", "Round Smooth", "In-between Round Smooth", "Cigar Shaped Smooth",
               "Barred Spiral", "Unbarred Tight Spiral", "Unbarred Loose Spiral", "Edge-on without Bulge",
               "Edge-on with Bulge"]
NUM_CLASSES = 10
MASK64 = (1 << 64) - 1


# --- hubble's RNG and split, bit for bit (core/rng.hpp, data/split.hpp) ------------------------
class HubbleRng:
    """xoshiro256** seeded by splitmix64, as hubble::Rng."""

    def __init__(self, seed):
        self.s = []
        seed &= MASK64
        for _ in range(4):
            seed = (seed + 0x9E3779B97F4A7C15) & MASK64
            z = seed
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & MASK64

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def uniform(self):
        return float(self.next() >> 11) * 2.0 ** -53

    def below(self, n):
        return int(self.uniform() * float(n)) % n

    def split(self, salt):
        return HubbleRng(self.next() ^ ((salt * 0xD1B54A32D192ED03) & MASK64))


def hubble_shuffle(v, rng):
    """Fisher-Yates as hubble::data::shuffle (in place)."""
    for i in range(len(v), 1, -1):
        j = rng.below(i)
        v[i - 1], v[j] = v[j], v[i - 1]


def stratified_split(labels, validation_fraction, seed):
    """hubble::data::stratified_split: per class, a seeded shuffle; the first round(f * n_c) go to
    validation. Returns (train, validation), each sorted ascending."""
    if not 0.0 <= validation_fraction <= 1.0:
        raise SystemExit(f"--val-split {validation_fraction} is outside [0, 1]")
    classes = int(max(labels)) + 1 if len(labels) else 0
    train, val = [], []
    for c in range(classes):
        members = [i for i, l in enumerate(labels) if l == c]
        hubble_shuffle(members, HubbleRng(seed).split(c + 1))
        n_val = int(np.floor(validation_fraction * len(members) + 0.5))  # llround for x >= 0
        val += members[:n_val]
        train += members[n_val:]
    return sorted(train), sorted(val)


# --- data ---------------------------------------------------------------------------------------
def load_galaxy10(path, crop, max_images=0, seed=0):
    """Centre-cropped uint8 images [N, crop, crop, 3] and int64 labels [N]."""
    if not os.path.isfile(path):
        raise SystemExit(f"{path}: no such file")
    with h5py.File(path, "r") as f:
        for key in ("images", "ans"):
            if key not in f:
                raise SystemExit(f"{path}: dataset '{key}' is missing (not a Galaxy10 file?)")
        images, ans = f["images"], f["ans"][()].astype(np.int64)
        if images.ndim != 4 or images.shape[3] != 3 or images.shape[0] != len(ans):
            raise SystemExit(f"{path}: 'images' has shape {images.shape}, expected (N, H, W, 3) with N = {len(ans)}")
        n, h, w, _ = images.shape
        if crop > h or crop > w or crop <= 0:
            raise SystemExit(f"{path}: cannot crop {crop}x{crop} from {h}x{w} images")
        if ans.min() < 0 or ans.max() >= NUM_CLASSES:
            raise SystemExit(f"{path}: labels outside 0..{NUM_CLASSES - 1}")
        rows = list(range(n))
        if max_images and max_images < n:  # a seeded sample (the file is sorted by class)
            hubble_shuffle(rows, HubbleRng(seed).split(0x5EED))
            rows = sorted(rows[:max_images])
        y0, x0 = (h - crop) // 2, (w - crop) // 2
        out = np.empty((len(rows), crop, crop, 3), dtype=np.uint8)
        for k, r in enumerate(rows):  # one image at a time: the file is chunked per image
            out[k] = images[r, y0:y0 + crop, x0:x0 + crop, :]
        return out, ans[rows]


def to_tensor(batch_uint8):
    return torch.from_numpy(np.ascontiguousarray(batch_uint8)).float().div_(255.0)


# --- the network ----------------------------------------------------------------------------------
class PaperNet(nn.Module):
    def __init__(self, crop=128):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 32, 5, stride=2), nn.Conv2d(32, 64, 3), nn.Conv2d(64, 128, 3),
                                    nn.Conv2d(128, 256, 3)])
        side = crop
        side = (side - 5) // 2 + 1
        side //= 2
        for _ in range(3):
            side = (side - 3 + 1) // 2
        if side < 1:
            raise SystemExit(f"--crop {crop} is too small for the paper's network")
        self.flat = side * side * 256
        self.dropout_1 = nn.Dropout(0.1)
        self.dense_1 = nn.Linear(self.flat, 256)
        self.dropout_2 = nn.Dropout(0.25)
        self.dense_2 = nn.Linear(256, NUM_CLASSES)
        for m in list(self.convs) + [self.dense_1, self.dense_2]:
            nn.init.xavier_uniform_(m.weight)  # fans K*K*Cin / K*K*F: Keras' glorot_uniform
            nn.init.zeros_(m.bias)

    def forward(self, x_nhwc):
        x = x_nhwc.permute(0, 3, 1, 2)
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # channels-last flatten, as Keras/hubble
        x = F.relu(self.dense_1(self.dropout_1(x)))
        return self.dense_2(self.dropout_2(x))             # logits


# --- evaluation -----------------------------------------------------------------------------------
@torch.no_grad()
def predict(net, images, batch_size=128):
    net.eval()
    logits = [net(to_tensor(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(logits) if logits else torch.empty(0, NUM_CLASSES)


def score(net, images, labels):
    logits = predict(net, images)
    y = torch.from_numpy(labels)
    loss = F.cross_entropy(logits, y).item()
    pred = logits.argmax(1).numpy()
    return loss, float((pred == labels).mean()), pred


def classification_report(labels, pred):
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    per_class = []
    for k in range(NUM_CLASSES):
        tp, predicted, present = cm[k, k], cm[:, k].sum(), cm[k, :].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / present if present else 0.0
        f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
        per_class.append({"class": k, "name": CLASS_NAMES[k], "precision": float(p), "recall": float(r),
                          "f1": float(f1), "support": int(present)})
    return {
        "accuracy": float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0,
        "macro_precision": float(np.mean([c["precision"] for c in per_class])),
        "macro_recall": float(np.mean([c["recall"] for c in per_class])),
        "macro_f1": float(np.mean([c["f1"] for c in per_class])),
        "count": int(cm.sum()),
        "per_class": per_class,
        "class_names": CLASS_NAMES,
        "confusion_matrix": cm.tolist(),
    }


def print_report(m, title):
    print(f"\n{title}: accuracy {m['accuracy']:.4f}  macro precision {m['macro_precision']:.4f}  "
          f"macro recall {m['macro_recall']:.4f}  macro F1 {m['macro_f1']:.4f}  ({m['count']} images)")
    print(f"{'class':<26}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for c in m["per_class"]:
        print(f"{c['class']} {c['name']:<24}{c['precision']:>10.3f}{c['recall']:>10.3f}{c['f1']:>10.3f}{c['support']:>9}")
    print("confusion matrix (rows: true class, columns: predicted)")
    print("     " + "".join(f"{k:>5}" for k in range(NUM_CLASSES)))
    for k, row in enumerate(m["confusion_matrix"]):
        print(f"{k:>5}" + "".join(f"{v:>5}" for v in row))


def write_json_atomic(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


# --- training -------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="training file (Galaxy10 layout: images N x H x W x 3 uint8, ans)")
    ap.add_argument("--test-data", help="test file, scored once at the end (and every epoch with --eval-every-epoch)")
    ap.add_argument("--val-split", type=float, default=0.2,
                    help="stratified validation fraction of --data (hubble's split); 0 = train on everything")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eps", type=float, default=1e-7, help="Adam epsilon (Keras' 1e-7; PyTorch's default is 1e-8)")
    ap.add_argument("--seed", type=int, default=42, help="split, initial weights, dropout and shuffling")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--no-augment", action="store_true", help="train on the unrotated images only (not the paper)")
    ap.add_argument("--out", default="runs/torch_galaxy10")
    ap.add_argument("--max-images", type=int, default=0,
                    help="use a seeded sample of at most N images of each file (smoke runs); 0 = all")
    ap.add_argument("--eval-every-epoch", action="store_true",
                    help="also score --test-data after every epoch (for learning curves)")
    args = ap.parse_args()
    if args.eval_every_epoch and not args.test_data:
        raise SystemExit("--eval-every-epoch needs --test-data")
    if args.epochs < 1 or args.batch_size < 1 or args.threads < 1:
        raise SystemExit("--epochs, --batch-size and --threads must be positive")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    images, labels = load_galaxy10(args.data, args.crop, args.max_images, args.seed)
    train_idx, val_idx = stratified_split(labels.tolist(), args.val_split, args.seed)
    train_x, train_y = images[train_idx], labels[train_idx]
    val_x, val_y = images[val_idx], labels[val_idx]
    del images
    test_x = test_y = None
    if args.test_data:
        test_x, test_y = load_galaxy10(args.test_data, args.crop, args.max_images, args.seed + 1)
    rotations = 1 if args.no_augment else 4
    print(f"train {len(train_y)} images x{rotations} rotations, validation {len(val_y)}, "
          f"test {0 if test_y is None else len(test_y)}; crop {args.crop}, batch {args.batch_size}, "
          f"lr {args.lr}, eps {args.eps}, seed {args.seed}, {args.threads} threads, torch {torch.__version__}")
    if len(train_y) == 0:
        raise SystemExit("no training images left after the validation split")

    # The permuted NHWC input is already channels-last in memory; with channels-last weights
    # oneDNN runs its fast NHWC kernels (about 2x faster than NCHW on this CPU).
    net = PaperNet(args.crop).to(memory_format=torch.channels_last)
    print(f"parameters: {sum(p.numel() for p in net.parameters())}")
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=args.eps)
    shuffle_rng = np.random.default_rng(args.seed)
    views = np.array([(i, k) for i in range(len(train_y)) for k in range(rotations)], dtype=np.int64)

    history, test_curve = [], []
    for epoch in range(1, args.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        order = views[shuffle_rng.permutation(len(views))]
        total_loss, correct = 0.0, 0
        for b in range(0, len(order), args.batch_size):
            chunk = order[b:b + args.batch_size]
            batch = np.stack([np.rot90(train_x[i], k, axes=(0, 1)) for i, k in chunk])
            y = torch.from_numpy(train_y[chunk[:, 0]])
            logits = net(to_tensor(batch))
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total_loss += loss.item() * len(chunk)
            correct += int((logits.argmax(1) == y).sum())
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch, "train_loss": total_loss / len(order), "train_accuracy": correct / len(order),
               "seconds": seconds, "images_per_second": len(order) / seconds}
        line = (f"epoch {epoch:>3}/{args.epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
                f"  ({seconds:.1f} s, {row['images_per_second']:.1f} img/s)")
        if len(val_y):
            row["val_loss"], row["val_accuracy"], _ = score(net, val_x, val_y)
            line += f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
        if args.eval_every_epoch:
            _, acc, _ = score(net, test_x, test_y)
            test_curve.append(acc)
            row["test_accuracy"] = acc
            line += f"  test acc {acc:.4f}"
        history.append(row)
        print(line, flush=True)

    if test_y is not None:
        evaluated_on, ex, ey = "test", test_x, test_y
    elif len(val_y):
        evaluated_on, ex, ey = "validation", val_x, val_y
    else:
        evaluated_on, ex, ey = "train (no test or validation set)", train_x, train_y
    _, _, pred = score(net, ex, ey)
    metrics = classification_report(ey, pred)
    print_report(metrics, f"{evaluated_on} ({args.test_data or args.data})")
    metrics["evaluated_on"] = evaluated_on
    if args.eval_every_epoch:
        metrics["test_accuracy_per_epoch"] = test_curve
    metrics["history"] = history
    metrics["config"] = dict(vars(args), torch_version=torch.__version__, command=" ".join([sys.executable] + sys.argv),
                             train_images=len(train_y), validation_images=len(val_y),
                             test_images=0 if test_y is None else len(test_y))
    path = os.path.join(args.out, "metrics.json")
    write_json_atomic(path, metrics)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
