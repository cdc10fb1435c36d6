"""The partitioned engine on a Dask distributed cluster given by address (``--scheduler``)."""

from __future__ import annotations

import socket

import pandas as pd
import pytest
from typer.testing import CliRunner

from doseatlas import run
from doseatlas.cli import app, example_path
from doseatlas.errors import ConfigError
from doseatlas.io import RUN_TABLES

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


def _closed_port() -> str:
    """An address on this machine where nothing listens (a port bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


@pytest.mark.slow
def test_a_two_worker_cluster_gives_the_in_memory_tables(tmp_path):
    wells = pd.read_parquet(example_path())
    memory = run(wells)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        ours = run(wells, engine="dask", partitions=3, scheduler=cluster.scheduler_address,
                   spill_dir=tmp_path)  # fmt: skip
    for name in RUN_TABLES:
        pd.testing.assert_frame_equal(getattr(ours, name), getattr(memory, name), check_exact=True, obj=name)
    assert ours.provenance["parameters"]["engine"]["scheduler"] == cluster.scheduler_address
    assert list(tmp_path.iterdir()) == []  # the spilled pieces are removed


@pytest.fixture
def short_timeout(monkeypatch):
    import doseatlas.scale

    monkeypatch.setattr(doseatlas.scale, "CONNECT_TIMEOUT_S", 1)


def test_an_unreachable_scheduler_is_a_config_error(short_timeout):
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        run(pd.read_parquet(example_path()).head(200), engine="dask", scheduler=_closed_port())


def test_cli_unreachable_scheduler_exits_2_without_traceback(tmp_path, short_timeout):
    address = _closed_port()
    args = ["run", "--engine", "dask", "--scheduler", address, "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "cannot reach the Dask scheduler" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_scheduler_without_the_dask_engine_is_refused(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "--scheduler" in result.output and "--engine dask" in result.output
