"""Load a doseatlas export with drevalpy and fit two of its baseline models on it (a real consumer's check).

Run with the python of the separate drevalpy environment (never the main one; see docs/export.md):

    /work/.venvs/drevalpy/bin/python scripts/drevalpy_check.py EXPORT_DIR [--metric ic50]

It loads ``EXPORT_DIR/drevalpy/doseatlas_<metric>`` with drevalpy's own loader (``load_dataset``, the path a
custom data set takes in drevalpy's pipeline), loads the cell-line and drug features each model asks for with
the model's own loaders, splits the pairs with drevalpy's leave-pair-out cross-validation, fits
``NaivePredictor`` and ``NaiveMeanEffectsPredictor`` on the training pairs, predicts the test pairs and prints
one JSON document (sizes and drevalpy's evaluation of the predictions). Exit code 0 when all of that worked.
This script imports only drevalpy and its dependencies, never doseatlas.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def check(export_dir: Path, metric: str, *, n_splits: int = 2) -> dict:
    """Load, split, fit, predict and evaluate; the figures as a dict."""
    from drevalpy.datasets.dataset import DrugResponseDataset
    from drevalpy.datasets.loader import load_dataset
    from drevalpy.evaluation import evaluate
    from drevalpy.models import NaiveMeanEffectsPredictor, NaivePredictor

    name = f"doseatlas_{metric}"
    path_data = str(export_dir / "drevalpy")
    dataset = load_dataset(name, path_data=path_data, measure="response", tissue_column=None)
    report = {
        "dataset": dataset.dataset_name,
        "pairs": len(dataset),
        "cell_lines": len(set(dataset.cell_line_ids)),
        "drugs": len(set(dataset.drug_ids)),
    }
    split = dataset.split_dataset(n_cv_splits=n_splits, mode="LPO", split_validation=False, random_state=0)[0]
    train, test = split["train"], split["test"]
    report["train_pairs"], report["test_pairs"] = len(train), len(test)
    for model_class in (NaivePredictor, NaiveMeanEffectsPredictor):
        model = model_class()
        cells = model.load_cell_line_features(data_path=path_data, dataset_name=name)
        drugs = model.load_drug_features(data_path=path_data, dataset_name=name)
        model.train(output=train, cell_line_input=cells, drug_input=drugs)
        predictions = model.predict(
            cell_line_ids=test.cell_line_ids, drug_ids=test.drug_ids, cell_line_input=cells, drug_input=drugs
        )
        predicted = DrugResponseDataset(
            response=test.response,
            cell_line_ids=test.cell_line_ids,
            drug_ids=test.drug_ids,
            predictions=predictions,
            dataset_name=name,
        )
        report[model.get_model_name()] = evaluate(predicted, ["RMSE", "Pearson"])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path, help="output directory of `doseatlas export`")
    parser.add_argument("--metric", default="ic50", help="metric whose drevalpy data set is loaded")
    args = parser.parse_args(argv)
    print(json.dumps(check(args.export_dir, args.metric), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
