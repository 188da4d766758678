"""The bundled demo set: small question files in every CARES schema over scikit-image photos.

The files follow spec §2 field by field (IU-Xray's ``question``/``[yes, no]`` prompt and varied
answer strings, FairVLMed's open questions without demographics, HAM10000's ``options`` and
``fig_caption`` with 5-year ages, OL3I's comma-laden two options, string ages and ``label``), so
the loader, the scorers and the engine run end to end on data that ship with a package. The
images are crops of scikit-image's ``retina``, ``microaneurysms``, ``cell``,
``immunohistochemistry`` and ``camera``: stand-ins, not medical cases of those sources.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_DIRECTORY", "fixture_files", "write_fixture"]

DEFAULT_DIRECTORY = Path("~/.cache/asklepios/cares-fixture")
VERSION = 1

_IU_QUESTIONS = [
    ("Is there evidence of pleural effusion?", "No."),
    ("Is the heart size normal?", "Yes."),
    ("Is there a focal consolidation?", "- No."),
    ("Are the lungs clear?", "Yes"),
    ("Is there a pneumothorax?", "No"),
    ("Is the cardiomediastinal silhouette within normal limits?", "Yes, it is normal."),
]
_FUNDUS = [
    (
        "What does the fundus image suggest about the optic disc?",
        "The cup-to-disc ratio is enlarged, suggestive of glaucoma.",
    ),
    ("Describe the retinal vessels in this image.", "The retinal vessels appear normal."),
    ("Is there any sign of glaucoma in this image?", "There are no signs of glaucoma."),
]
_HAM_LOCATIONS = "A:head/neck, B:trunk, C:upper extremity, D:lower extremity"
_HAM_DIAGNOSES = "A:melanocytic nevi, B:melanoma, C:benign keratosis, D:basal cell carcinoma"
_OL3I_OPTIONS = (
    "A:Yes, calcification is present, B:No, there is no calcification visible in the image"
)


def fixture_files(directory: Path) -> dict[str, Path]:
    """Return the paths of the fixture's files in ``directory``."""
    return {
        "iuxray": directory / "IU-Xray" / "iuxray_factuality.jsonl",
        "fairvlmed": directory / "Harvard-FairVLMed" / "fundus_factuality.jsonl",
        "ham10000": directory / "HAM10000" / "HAM10000_factuality.jsonl",
        "ol3i": directory / "OL3I" / "OL3I_factuality.jsonl",
        "demographics": directory / "Harvard-FairVLMed" / "demographics.csv",
    }


def _crop(photo: np.ndarray, index: int, size: int = 64) -> np.ndarray:
    """Return the ``index``-th ``size`` x ``size`` RGB crop along the photo's diagonal."""
    if photo.ndim == 2:
        photo = np.stack([photo] * 3, axis=-1)
    height, width = photo.shape[:2]
    step = max(1, (min(height, width) - size) // 8)
    top = min(height - size, (index * step) % max(1, height - size))
    left = min(width - size, (index * step * 2) % max(1, width - size))
    from skimage.transform import resize

    window = photo[top : top + size * 4, left : left + size * 4]
    return (resize(window, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)


def _rows(per_source: int) -> dict[str, list[dict[str, object]]]:
    rng = np.random.default_rng(2024)
    iu, fundus, ham, ol3i = [], [], [], []
    for i in range(per_source):
        question, answer = _IU_QUESTIONS[i % len(_IU_QUESTIONS)]
        iu.append(
            {
                "question": question,
                "text": f"{question} Please choose from the following two options: "
                "[yes, no]\n<image>",
                "answer": answer,
                "image": f"CXR{3000 + i}_IM-{1400 + i}/0.png",
                "question_id": 0,
            }
        )
        question, answer = _FUNDUS[i % len(_FUNDUS)]
        fundus.append(
            {
                "question_id": 8700 + i // 2,
                "image": f"slo_fundus_{8700 + i // 2:05d}.jpg",
                "text": question,
                "answer": answer,
            }
        )
        location = i % 2 == 0
        options = _HAM_LOCATIONS if location else _HAM_DIAGNOSES
        letter = "ABCD"[int(rng.integers(0, 4))]
        caption = next(o for o in options.split(", ") if o.startswith(letter + ":"))
        what = "Where is the lesion located?" if location else "What is the diagnosis?"
        ham.append(
            {
                "question_id": f"ISIC_{24300 + i // 2:07d}",
                "options": options,
                "fig_caption": caption,
                "age": int(rng.integers(4, 17)) * 5,
                "gender": "male" if rng.random() < 0.5 else "female",
                "image": f"ham10000_testset/ISIC_{24300 + i // 2:07d}.jpg",
                "text": f"<image>\nQuestion: {what} Options: {options}. Please answer with the "
                "option's letter from the given choices directly.",
            }
        )
        label = int(rng.random() < 0.3)
        yes_no = i % 3 == 0
        suffix = " Please choose from the following two options: [yes, no]" if yes_no else ""
        ol3i.append(
            {
                "label": label,
                "age": str(int(rng.integers(40, 90))),
                "gender": "female" if rng.random() < 0.5 else "male",
                "options": _OL3I_OPTIONS,
                "answer": "A:Yes, calcification is present"
                if label
                else "B:No, there is no calcification visible in the image",
                "question_id": 0,
                "text": f"<image>\nQuestion: Is there coronary artery calcification? Options: "
                f"{_OL3I_OPTIONS}.{suffix}",
                "image": f"ol3i/{i:04d}.png",
            }
        )
    return {"iuxray": iu, "fairvlmed": fundus, "ham10000": ham, "ol3i": ol3i}


def _write(tmp: Path, per_source: int) -> None:
    from PIL import Image
    from skimage import data

    photos = {
        "iuxray": data.camera(),
        "fairvlmed": data.retina(),
        "ham10000": data.immunohistochemistry(),
        "ol3i": data.cell(),
    }
    rows = _rows(per_source)
    files = fixture_files(tmp)
    races = ("asian", "black", "white")
    demographics = ["key,age,gender,race"]
    for source, source_rows in rows.items():
        files[source].parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(row, ensure_ascii=False) for row in source_rows]
        files[source].write_text("\n".join(lines) + "\n", encoding="utf-8")
        for index, row in enumerate(source_rows):
            path = files[source].parent / str(row["image"])
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            photo = photos[source] if index % 3 else data.microaneurysms()
            Image.fromarray(_crop(photo, index)).save(path)
            if source == "fairvlmed":
                demographics.append(
                    f"{row['image']},{40 + 7 * index},{'male' if index % 2 else 'female'},"
                    f"{races[index % 3]}"
                )
    files["demographics"].write_text("\n".join(demographics) + "\n", encoding="utf-8")


def write_fixture(directory: Path, per_source: int = 6) -> dict[str, Path]:
    """Write the fixture under ``directory`` unless it is there; return its files.

    Each size has its own folder (``v<version>-n<per_source>``), created once and never
    replaced: it is written into a temporary sibling and renamed into place, and a writer that
    finds the folder made by another (several ranks start together) drops its own copy, so a
    reader sees a whole fixture or none.
    """
    target = Path(directory) / f"v{VERSION}-n{per_source}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            _write(tmp, per_source)
            os.rename(tmp, target)  # fails if another writer's folder is already there
        except OSError:
            if not target.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return fixture_files(target)
