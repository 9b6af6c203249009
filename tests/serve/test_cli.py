"""`slmkit serve` on the command line: options reach ServeConfig, errors are one line, localhost by default."""

from __future__ import annotations

from typer.testing import CliRunner

from slmkit.cli.main import app


def test_serve_builds_the_config_and_binds_localhost(monkeypatch, tmp_path):
    import slmkit.serve

    seen = {}
    monkeypatch.setattr(slmkit.serve, "serve", lambda config: seen.setdefault("config", config))
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--port", "0", "--max-batch", "4"])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.host == "127.0.0.1" and config.port == 0 and config.max_batch == 4
    assert config.served_dir == str(tmp_path) and config.api_key is None


def test_serve_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "not a folder" in result.output
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--max-batch", "0"])
    assert result.exit_code == 1 and "max_batch must be >= 1" in result.output


def test_non_local_host_check():
    from slmkit.serve import is_local_host

    assert is_local_host("127.0.0.1") and is_local_host("localhost") and is_local_host("::1")
    assert not is_local_host("0.0.0.0") and not is_local_host("192.168.1.5")
