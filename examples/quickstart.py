"""
Quickstart: a MADE density of handwritten digits
=================================================

Fit :class:`skmade.MADEDensity` to scikit-learn's 8x8 digits, binarized, and use the
density three ways: held-out log-likelihood against an independent-Bernoulli baseline,
new digits drawn from the model, and the least likely test digits flagged as anomalies.

Run it with ``make demo`` or ``python examples/quickstart.py [--output DIR]``.
"""

import argparse
import struct
import time
import zlib
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skmade import MADEDensity


def independent_bernoulli_log_likelihood(X_train, X_test):
    """Mean held-out log-likelihood of a product of per-pixel Bernoullis."""
    p = (X_train.sum(axis=0) + 1) / (X_train.shape[0] + 2)  # Laplace smoothing
    return float(np.mean(X_test @ np.log(p) + (1 - X_test) @ np.log(1 - p)))


def save_png_grid(images, path, n_cols=10, zoom=6, gap=1):
    """Write (n, 8, 8) images in [0, 1] as one grayscale PNG (no plotting library)."""
    n, h, w = images.shape
    n_rows = -(-n // n_cols)
    cell_h, cell_w = h * zoom + gap, w * zoom + gap
    canvas = np.full((n_rows * cell_h + gap, n_cols * cell_w + gap), 128, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, n_cols)
        big = np.kron(1 - image, np.ones((zoom, zoom)))  # dark ink on white
        top, left = gap + r * cell_h, gap + c * cell_w
        canvas[top : top + h * zoom, left : left + w * zoom] = np.round(big * 255)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    height, width = canvas.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in canvas)
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def main(output):
    digits = load_digits()
    X = (digits.data >= 8).astype(np.float64)  # 16 gray levels -> binary pixels
    X_train, X_test, _, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=0
    )
    print(
        f"Binarized 8x8 digits: {X_train.shape[0]} train, {X_test.shape[0]} test rows"
    )

    model = MADEDensity(random_state=0)  # the defaults
    start = time.perf_counter()
    model.fit(X_train)
    seconds = time.perf_counter() - start
    print(
        f"Fitted MADE (defaults: 1x500 units, early stopping) in {seconds:.1f} s, "
        f"{model.n_iter_} epochs, on {next(model.module_.parameters()).device}"
    )

    made = model.score(X_test)
    baseline = independent_bernoulli_log_likelihood(X_train, X_test)
    print("\nHeld-out mean log-likelihood (nats per digit, higher is better)")
    print(f"  independent Bernoulli baseline: {baseline:8.2f}")
    print(f"  MADE, defaults                : {made:8.2f}  ({made - baseline:+.2f})")

    output.mkdir(parents=True, exist_ok=True)
    samples = model.sample(50, random_state=0)
    save_png_grid(samples.reshape(-1, 8, 8), output / "samples.png")
    save_png_grid(X_test[:50].reshape(-1, 8, 8), output / "real.png")
    print(
        f"\nWrote 50 sampled digits to {output / 'samples.png'} "
        f"(real test digits beside them in {output / 'real.png'})"
    )

    scores = model.score_samples(X_test)
    order = np.argsort(scores)
    print("\nLeast likely test digits (anomaly candidates):")
    for rank, i in enumerate(order[:5], 1):
        print(f"  {rank}. test row {i:3d}, label {y_test[i]}, log p = {scores[i]:7.2f}")
    save_png_grid(X_test[order[:10]].reshape(-1, 8, 8), output / "least_likely.png")
    print(
        f"  median test digit: log p = {np.median(scores):7.2f}; "
        f"the 10 least likely are in {output / 'least_likely.png'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--output", type=Path, default=Path("demo_output"))
    main(parser.parse_args().output)
