"""Reference side of ``bench/corruptions.py``: runs ``imagecorruptions`` in its own environment.

Started by the bench with the reference venv's Python; never imported by asklepios. Reads one JSON
job per line on stdin and answers one JSON line on stdout:

* ``{"op": "info"}`` → package version and its frost texture folder;
* ``{"op": "run", "name", "severity", "draws", "seed", "images", "out"}`` → corrupts the uint8
  images of the ``.npy`` file ``images`` (``(N, H, W, 3)``) cyclically until ``draws`` outputs,
  seeding numpy once with ``seed``; writes the outputs (deterministic corruptions: the ``N``
  images) or per-draw mean and std (random ones) to ``out`` (``.npz``) and answers the seconds
  per image spent inside ``imagecorruptions.corrupt``.

The spec's shim makes version 1.1.2 run on current NumPy and scikit-image: ``np.float_`` is
restored and ``gaussian(..., multichannel=True)`` maps to ``channel_axis=-1``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def _load_reference():
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
    import cv2
    from imagecorruptions import corruptions

    cv2.setNumThreads(1)
    original = corruptions.gaussian

    def gaussian(*args, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return original(*args, **kwargs)

    corruptions.gaussian = gaussian
    import imagecorruptions

    return imagecorruptions


def main() -> None:
    reference = _load_reference()
    for line in sys.stdin:
        job = json.loads(line)
        if job["op"] == "info":
            from importlib.metadata import version

            frost = Path(reference.__file__).parent / "frost"
            answer = {"version": version("imagecorruptions"), "frost": str(frost)}
        else:
            images = np.load(job["images"])
            np.random.seed(job["seed"])
            outputs, means, stds, spent = [], [], [], 0.0
            for draw in range(job["draws"]):
                image = images[draw % len(images)]
                started = time.perf_counter()
                out = reference.corrupt(
                    image, severity=job["severity"], corruption_name=job["name"]
                )
                spent += time.perf_counter() - started
                if job["deterministic"]:
                    outputs.append(out)
                else:
                    values = out.astype(np.float64)
                    means.append(values.mean())
                    stds.append(values.std())
            if job["deterministic"]:
                np.savez(job["out"], outputs=np.stack(outputs))
            else:
                np.savez(job["out"], means=np.array(means), stds=np.array(stds))
            answer = {"seconds_per_image": spent / job["draws"]}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
