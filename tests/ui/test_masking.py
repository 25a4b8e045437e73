"""What the details screen hides: it is often on a shared screen or in a screenshot."""

from __future__ import annotations

import pytest

from gpuconsole.present import format as fmt


@pytest.mark.parametrize(
    "name",
    [
        "API_TOKEN",
        "DB_PASSWORD",
        "DB_PASS",
        "PGPASS",
        "ADMIN_PW",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_AUTH",
        "SSH_PRIVATE",
        "HF_TOKEN",
    ],
)
def test_secret_names_are_masked(name: str) -> None:
    assert fmt.masked_env(name, "hunter2") == fmt.MASK


def test_plain_values_stay_and_passwords_in_urls_do_not() -> None:
    assert fmt.masked_env("MODE", "train") == "train"
    assert fmt.masked_env("CUDA_VISIBLE_DEVICES", "0,1") == "0,1"
    url = fmt.masked_env("DATABASE_URL", "postgres://ana:hunter2@db:5432/runs")
    assert (
        "hunter2" not in url and url.startswith("postgres://ana:") and url.endswith("@db:5432/runs")
    )


def test_tokens_in_a_command_line_are_masked() -> None:
    text = fmt.mask_text("jupyter notebook --NotebookApp.token=abc123 --port 8888")
    assert "abc123" not in text and "--port 8888" in text
