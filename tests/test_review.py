"""doseatlas review: the JSON API and pages (Starlette's TestClient), the decision store under concurrent
writers, the stable curve identity, and doseatlas run --reviews."""

from __future__ import annotations

import json
import threading
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from doseatlas import schemas as S
from doseatlas.cli import app as cli
from doseatlas.io import read_metadata
from doseatlas.review.apply import apply_reviews, review_ids
from doseatlas.review.store import Decision, ReviewStore

from review_run import CURVE, EVIL, make_run
from wells import plate

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

    from doseatlas.review.app import make_app


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("review"))


@pytest.fixture
def client(run_dir, tmp_path):
    return TestClient(make_app(run_dir, db=tmp_path / "reviews.sqlite"))


def _curve(client, **filters) -> str:
    found = client.get("/api/curves", params=filters).json()
    assert found["total"] >= 1, filters
    return found["curves"][0]["curve_id"]


def test_list_filters_and_search(client):
    every = client.get("/api/curves").json()
    assert every["total"] == 3
    assert client.get("/api/curves", params={S.DATASET: "lab_b"}).json()["total"] == 1
    assert client.get("/api/curves", params={S.PERTURBAGEN: "flatinib"}).json()["total"] == 1
    assert client.get("/api/curves", params={"q": "drugam"}).json()["total"] == 1
    refused = client.get("/api/curves", params={S.STATUS: "refused"}).json()
    assert refused["total"] >= 1 and all("refused" in c[S.STATUS].split("|") for c in refused["curves"])
    by_reason = client.get("/api/curves", params={S.REASON: "no_time_zero"}).json()["curves"]
    assert [c[S.DATASET] for c in by_reason] == ["lab_b"]
    assert client.get("/api/curves", params={S.SCALE: "gr"}).json()["total"] == 3
    assert client.get("/api/curves", params={S.DATASET: "nowhere"}).json()["total"] == 0
    assert client.get("/api/curves", params={"flag": "no_such_flag"}).json()["total"] == 0


def test_curve_detail_has_points_fits_metrics_and_plates(client):
    detail = client.get(f"/api/curves/{_curve(client, perturbagen=EVIL)}").json()
    assert detail["key"][S.PERTURBAGEN] == EVIL
    assert len(detail["points"]) == 8 and {S.CONCENTRATION, S.PLATE, S.WELL} <= set(detail["points"][0])
    assert {m[S.SCALE] for m in detail["metrics"]} >= {S.GR, S.RELATIVE_VIABILITY}
    assert all(m[S.STATUS] != "refused" or m[S.REASON] for m in detail["metrics"])
    assert detail["fits"] and detail["plates"] and detail["review"] is None
    assert client.get("/api/curves/0000000000000000").status_code == 404


def test_review_is_stored_with_audit_and_inputs(client):
    cid = _curve(client, perturbagen="flatinib")
    posted = client.post(f"/api/curves/{cid}/review", json={"decision": "reject", "reason": "edge effect",
                                                            "reviewer": "ana"})  # fmt: skip
    assert posted.status_code == 200
    client.post(
        f"/api/curves/{cid}/review", json={"decision": "note", "note": "see plate p2", "reviewer": "bo"}
    )
    detail = client.get(f"/api/curves/{cid}").json()
    review = detail["review"]
    assert (review["decision"], review["reason"], review["note"]) == ("reject", "edge effect", "see plate p2")
    assert review["run_inputs"] and review["run_inputs"][0]["checksum"].startswith("sha256:")
    assert [a["decision"] for a in detail["audit"]] == ["reject", "note"]
    assert detail["audit"][1]["previous_decision"] == "reject"
    assert client.get("/api/curves", params={"review": "reject"}).json()["total"] == 1


@pytest.mark.parametrize(
    "body",
    [{"decision": "reject", "reviewer": "a"}, {"decision": "maybe", "reviewer": "a"}, [1, 2], "not json"],
)
def test_bad_reviews_are_refused(client, body):
    cid = _curve(client)
    sent = client.post(
        f"/api/curves/{cid}/review", content=body if isinstance(body, str) else json.dumps(body)
    )
    assert sent.status_code in (400, 422)
    assert client.get(f"/api/curves/{cid}").json()["audit"] == []


def test_hostile_names_are_escaped_in_every_page(client):
    cid = _curve(client, perturbagen=EVIL)
    client.post(f"/api/curves/{cid}/review", json={"decision": "reject", "reason": EVIL, "note": "<b>x</b>",
                                                   "reviewer": "<img src=x onerror=alert(1)>"})  # fmt: skip
    for page in (
        client.get("/"),
        client.get(f"/curve/{cid}"),
        client.get(f"/curve/{EVIL}"),
        client.get("/curve/<b>x"),
    ):
        assert page.status_code in (200, 404)
        assert (
            "<script>alert" not in page.text and "<u>CL1" not in page.text and "<img src=x" not in page.text
        )
        assert "<b>x</b>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/curve/{cid}").text
    assert client.get(f"/curve/{cid}/plot.png").headers["content-type"] == "image/png"


@pytest.mark.parametrize("path", ["/../metrics.parquet", "/curve/..%2F..%2Fetc%2Fpasswd", "/static/../../x",
                                  "/api/curves/..%2Fmetrics.parquet", "/curve/x/plot.png", "/report.html"])  # fmt: skip
def test_no_file_is_served_through_a_path(client, path):
    page = client.get(path)
    assert page.status_code == 404 or "PAR1" not in page.text
    assert "root:" not in page.text and "PAR1" not in page.text


def test_missing_or_foreign_run_directory_is_one_clear_error(tmp_path):
    for target, said in ((tmp_path / "absent", "no such run directory"), (tmp_path, "not a doseatlas run")):
        result = CliRunner().invoke(cli, ["review", str(target), "--db", str(tmp_path / "r.sqlite")])
        assert result.exit_code == 2 and said in " ".join(result.output.split())
        assert "Traceback" not in result.output


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "reviews.sqlite"
    ReviewStore(path)
    n_threads, n_each = 8, 25

    def write(worker: int) -> None:
        store = ReviewStore(path)  # each thread its own connection, like two tabs or two processes
        for i in range(n_each):
            key = {"i": i % 5}
            store.record(Decision(curve_id=f"c{i % 5}", curve_key=key, decision="note" if i % 2 else "reject",
                                  reason="r", note=f"{worker}-{i}", reviewer=f"w{worker}"))  # fmt: skip

    threads = [threading.Thread(target=write, args=(w,)) for w in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = ReviewStore(path)
    audit = store.audit()
    assert len(audit) == n_threads * n_each
    assert sorted(a["note"] for a in audit) == sorted(
        f"{w}-{i}" for w in range(n_threads) for i in range(n_each)
    )
    assert set(store.decisions()) == {f"c{i}" for i in range(5)}


def test_curve_identity_is_the_key_not_the_row():
    table = pd.DataFrame({S.DATASET: ["a", "a", "b"], S.CELL_LINE: ["x", "x", "x"], S.PERTURBATION_TYPE: "drug",
                          S.PERTURBAGEN: ["d", "d", "d"], S.READOUT: "atp", S.DURATION_H: [72.0, 72.0, 72.0],
                          S.SERIES: ""})  # fmt: skip
    ids = review_ids(table)
    assert ids[0] == ids[1] != ids[2]
    shuffled = review_ids(table.iloc[::-1].reset_index(drop=True))
    assert list(shuffled) == list(ids[::-1])
    assert list(review_ids(table.drop(columns=S.SERIES))) == list(ids)  # a run without series: same identity


def test_apply_reviews_refuses_rejected_and_marks_accepted(run_dir):
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    ids = review_ids(metrics)
    first, second = ids.unique()[:2]
    decisions = {
        first: {"decision": "reject"},
        second: {"decision": "accept"},
        "gone": {"decision": "reject"},
    }
    out = apply_reviews(metrics, decisions)
    rejected = out[ids.eq(first)]
    assert (rejected[S.STATUS] == "refused").all() and (rejected[S.REASON] == "rejected_in_review").all()
    assert rejected[S.VALUE].isna().all() and (rejected[S.REVIEWED] == "rejected").all()
    accepted = out[ids.eq(second)]
    assert accepted[S.STATUS].equals(metrics.loc[ids.eq(second), S.STATUS])
    assert (accepted[S.REVIEWED] == "accepted").all() and out.loc[
        ~ids.isin([first, second]), S.REVIEWED
    ].isna().all()


def test_run_with_reviews_applies_them_and_records_them(run_dir, tmp_path):
    client = TestClient(make_app(run_dir, db=tmp_path / "reviews.sqlite"))
    rejected, accepted = _curve(client, perturbagen=EVIL), _curve(client, perturbagen="drugamab")
    client.post(
        f"/api/curves/{rejected}/review", json={"decision": "reject", "reason": "bad", "reviewer": "a"}
    )
    client.post(f"/api/curves/{accepted}/review", json={"decision": "accept", "reviewer": "a"})
    again = make_run(run_dir.parent, extra=("--reviews", str(tmp_path / "reviews.sqlite")))
    metrics = pd.read_parquet(again / "metrics.parquet")
    ids = review_ids(metrics)
    assert (metrics.loc[ids.eq(rejected), S.REASON] == "rejected_in_review").all()
    assert (metrics.loc[ids.eq(accepted), S.REVIEWED] == "accepted").all()
    assert metrics.loc[~ids.isin([rejected, accepted]), S.STATUS].ne("refused").any()
    record = read_metadata(again / "metrics.parquet")["parameters"]["reviews"]
    assert [a["review_id"] for a in record["applied"]] == sorted([rejected, accepted])
    page = (again / "report.html").read_text()
    assert f"/curve/{rejected}" in page and f"/curve/{accepted}" in page and "<script>alert" not in page
    summary = json.loads((again / "summary.json").read_text())
    assert summary["provenance"]["parameters"]["reviews"]["database"].endswith("reviews.sqlite")
    missing = CliRunner().invoke(cli, ["run", str(run_dir.parent / "wells.csv"), "--out", str(tmp_path / "o"),
                                       "--reviews", str(tmp_path / "absent.sqlite")])  # fmt: skip
    assert missing.exit_code == 2 and "no such review database" in " ".join(missing.output.split())


def _with_flags(run_dir) -> pd.DataFrame:
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    flags = pd.Series(pd.NA, index=metrics.index, dtype="string")
    flags[metrics[S.PERTURBAGEN].eq("flatinib")] = "edge_effect"
    flags[metrics[S.DATASET].eq("lab_b")] = "high_cv;<b>odd</b>"
    return metrics.assign(flags=flags)


def test_flags_column_is_a_filter_when_present(run_dir):
    from doseatlas.review.app import _curve_index, filter_curves

    metrics = _with_flags(run_dir)
    index = _curve_index(metrics.assign(review_id=review_ids(metrics)))
    assert len(filter_curves(index, {"flag": "edge_effect"}, {})) == 1
    assert list(filter_curves(index, {"flag": "high_cv"}, {})[S.DATASET]) == ["lab_b"]
    assert len(filter_curves(index, {"flag": "nothing"}, {})) == 0


def test_report_lists_every_flagged_curve_with_a_link(run_dir):
    from types import SimpleNamespace

    from doseatlas import report

    metrics = _with_flags(run_dir)
    section = report.review_section(SimpleNamespace(metrics=metrics))
    for cid in review_ids(metrics[metrics["flags"].notna()]).unique():
        assert f'href="{report.REVIEW_URL}/curve/{cid}"' in section
    assert "<b>odd</b>" not in section and "&lt;b&gt;odd&lt;/b&gt;" in section
    many = pd.concat([metrics.assign(**{S.CELL_LINE: f"c{i}"}) for i in range(300)], ignore_index=True)
    big = report.review_section(SimpleNamespace(metrics=many))
    assert big.count("/curve/") == 600  # every flagged curve, not a sample
    assert len(big) < 600 * 1000  # each row bounded
    assert "no <code>flags</code> column" in report.review_section(
        SimpleNamespace(metrics=metrics.drop(columns="flags"))
    )


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_the_review_command_serves_localhost_by_default_and_warns_otherwise(
    run_dir, tmp_path, monkeypatch, host, warned
):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw))
    result = CliRunner().invoke(
        cli, ["review", str(run_dir), "--db", str(tmp_path / "r.sqlite"), "--host", host]
    )
    assert result.exit_code == 0, result.output
    assert served["host"] == host and served["port"] == 8765
    assert ("no authentication" in " ".join(result.output.split())) is warned


def test_a_streamed_one_data_set_dask_run_applies_reviews(tmp_path):
    # one data set: the dask engine would keep curves and metrics on disk; decisions need them in memory
    rows = [*plate(treated=CURVE, dataset="lab_a", cell_line="CL1", perturbagen="drugamab"),
            *plate(treated=CURVE, dataset="lab_a", cell_line="CL2", perturbagen="drugamab", plate_id="p3")]  # fmt: skip
    tmp_path.joinpath("wells.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    first = make_run(tmp_path, extra=("--engine", "dask"))
    client = TestClient(make_app(first, db=tmp_path / "reviews.sqlite"))
    rejected = _curve(client, cell_line="CL2")
    client.post(
        f"/api/curves/{rejected}/review", json={"decision": "reject", "reason": "bad", "reviewer": "a"}
    )
    again = make_run(tmp_path, extra=("--engine", "dask", "--reviews", str(tmp_path / "reviews.sqlite")))
    metrics = pd.read_parquet(again / "metrics.parquet")
    ids = review_ids(metrics)
    assert ids.eq(rejected).any() and (metrics.loc[ids.eq(rejected), S.REASON] == "rejected_in_review").all()
    assert metrics.loc[~ids.eq(rejected), S.REASON].ne("rejected_in_review").all()
