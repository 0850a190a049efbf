"""Claim files: parsing with field-named errors, ratios, verdicts, and parameters solved by bisection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spatial_helpers import TINY_CHIP, graphs, sim, tiny_chip

from compiler.cli import main
from simulator.claims import ClaimError, TargetUnavailableError, check_claim, format_result, load_claim

CLAIMS = Path(__file__).resolve().parents[2] / "claims"


def tiny_rate(context: int = 96) -> float:
    return sim("tiny-llama", tiny_chip(), context=context, prompt_len=1).tokens_per_s_per_user


def write_claim(tmp_path, **fields) -> Path:
    body = {"model": "tiny-llama", "target": str(TINY_CHIP), "context_in": 64, "context_out": 64,
            "source": "test", **fields}
    lines = [f"{k} = {json.dumps(v)}" for k, v in body.items()]
    path = tmp_path / "claim.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_shipped_taalas_claim_parses_and_gives_a_ratio():
    claim = load_claim(CLAIMS / "taalas-hc1-llama3.1-8b.toml")
    assert (claim.model, claim.target, claim.prompt_len, claim.gen_len) == ("llama3.1-8b", "taalas-hc1", 1024, 1024)
    assert claim.tokens_per_s_per_user == 17000 and claim.power_w == 200
    result = check_claim(claim, solve=False)
    check = result.figures[0]
    assert result.decode_context == 1536 and result.fits
    assert check.ratio == pytest.approx(check.simulated / 17000)
    assert check.simulated == pytest.approx(
        sim("llama3.1-8b", result_chip(), context=1536, prompt_len=1024).tokens_per_s_per_user)
    assert result.power["claimed_w"] == 200 and result.power["simulated_w"] > 0
    assert "verdict" in format_result(result)


def result_chip():
    from simulator.hardware import load_hardware

    return load_hardware("taalas-hc1")


def test_h100_claim_runs_through_the_programmable_simulator():
    pytest.importorskip("simulator.programmable", reason="the programmable simulator is not in this checkout")
    claim = load_claim(CLAIMS / "h100-llama3.1-8b-batch1.toml")
    assert claim.bound == "upper" and claim.tokens_per_s_per_user == 209
    try:
        result = check_claim(claim, solve=False)
    except TargetUnavailableError as exc:
        pytest.skip(f"the programmable simulator cannot run Llama 3.1 8B yet: {exc}")
    check = result.figures[0]
    assert result.fits and check.ratio <= 1 + claim.tolerance, check.verdict


@pytest.mark.parametrize("factor, verdict", [
    (1.0, "consistent within 0%"), (0.5, "reachable with margin"), (2.0, "needs 2.00x"),
])
def test_verdict_follows_the_simulation(tmp_path, factor, verdict):
    rate = tiny_rate()
    result = check_claim(load_claim(write_claim(tmp_path, tokens_per_s_per_user=rate * factor)), solve=False)
    assert result.figures[0].ratio == pytest.approx(1 / factor, rel=1e-9)
    assert result.figures[0].verdict.startswith(verdict)


def test_upper_bound_claims(tmp_path):
    rate = tiny_rate()
    above = check_claim(load_claim(write_claim(tmp_path, tokens_per_s_per_user=rate * 1.5, bound="upper")), False)
    assert above.figures[0].verdict.startswith("consistent: the simulation stays at 67%")
    below = check_claim(load_claim(write_claim(tmp_path, tokens_per_s_per_user=rate / 2, bound="upper")), False)
    assert below.figures[0].verdict.startswith("inconsistent: the simulation beats the claimed bound by 100%")


def test_a_claim_that_does_not_fit_is_not_reachable(tmp_path):
    # 1 MiB of SRAM holds about 8k tokens of tiny-llama's bf16 KV: 20k in / 20k out cannot fit.
    path = write_claim(tmp_path, tokens_per_s_per_user=1000.0, power_w=1.0)
    path.write_text(path.read_text().replace("context_in = 64", "context_in = 20000")
                    .replace("context_out = 64", "context_out = 20000"))
    result = check_claim(load_claim(path), solve=True)
    check = result.figures[0]
    assert not result.fits and check.verdict.startswith("not reachable with these parameters: KV cache")
    assert check.requirements == [] and "requirement" not in result.power


def test_requirements_are_solved_on_the_simulator(tmp_path):
    rate = tiny_rate()
    result = check_claim(load_claim(write_claim(tmp_path, tokens_per_s_per_user=rate * 1.5, power_w=2.0)))
    reqs = {r.field: r for r in result.figures[0].requirements}
    clock = reqs["clock_hz"]
    # Every latency is in cycles, so the rate is linear in the clock: bisection must land on 1.5x.
    assert clock.factor == pytest.approx(1.5, rel=2e-3) and clock.needed == pytest.approx(1.5e9, rel=2e-3)
    # More die area buys lanes: the solved die reaches the claim (to the bisection's tolerance).
    die = reqs["die.die_area_mm2"]
    assert die.needed > 14.9955 and die.at_solution["weights_per_cycle"] > 0
    # Denser storage frees area for lanes (on this chip storage dwarfs the lanes, so a little is enough).
    storage = reqs["weights.um2_per_weight_bit"]
    assert storage.factor < 1 and storage.at_solution["weights_per_cycle"] > 0
    power = result.power["requirement"]
    assert power["field"] == "energy.pj_per_weight_mac" and power["factor"] > 1


def test_solved_die_meets_the_claim(tmp_path):
    import dataclasses

    from simulator.claims.solve import figure_of, scaled

    rate = tiny_rate()
    claim = load_claim(write_claim(tmp_path, tokens_per_s_per_user=rate * 1.2))
    req = next(r for r in check_claim(claim).figures[0].requirements if r.field == "die.die_area_mm2")
    chip = scaled(tiny_chip(), "die.die_area_mm2", req.factor)
    assert dataclasses.replace(chip).die.die_area_mm2 == pytest.approx(req.needed)
    reached = sim("tiny-llama", chip, context=96, prompt_len=1).tokens_per_s_per_user
    assert reached >= claim.tokens_per_s_per_user
    # Just below the solution the claim is missed (or the design no longer fits at all).
    below = scaled(tiny_chip(), "die.die_area_mm2", req.factor * (1 - 3e-3))
    assert figure_of(sim("tiny-llama", below, context=96, prompt_len=1), "tokens_per_s_per_user") < rate * 1.2


@pytest.mark.parametrize("edit, message", [
    ({"model": None}, "model: missing"),
    ({"context_in": None}, r"context_in \(or prompt_len\): missing"),
    ({"prompt_len": 64}, "context_in and prompt_len say the same thing"),
    ({"tokens_per_s_per_user": "fast"}, "tokens_per_s_per_user: expected a number"),
    ({"tokens_per_s_per_user": -5}, "tokens_per_s_per_user: must be positive"),
    ({"context_out": 1.5}, "context_out: expected an integer"),
    ({"bound": "lower"}, "bound: 'lower'"),
    ({"speed": 3}, "unknown field"),
    ({}, "tokens_per_s_per_user or tokens_per_s_total"),
])
def test_bad_claim_files_name_the_field(tmp_path, edit, message):
    fields = {"tokens_per_s_per_user": 100.0} if edit else {}
    fields.update(edit)
    path = write_claim(tmp_path, **{k: v for k, v in fields.items() if v is not None})
    if None in edit.values():
        key = next(k for k, v in edit.items() if v is None)
        path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith(key)))
    with pytest.raises(ClaimError, match=message):
        load_claim(path)


def test_unknown_target_names_the_presets(tmp_path):
    from simulator.hardware import HardwareError

    with pytest.raises(HardwareError, match="unknown hardware 'hc9'"):
        check_claim(load_claim(write_claim(tmp_path, tokens_per_s_per_user=1.0, target="hc9")), solve=False)


def test_cli_claim_text_and_json(tmp_path, capsys):
    path = write_claim(tmp_path, tokens_per_s_per_user=tiny_rate() * 0.9)
    assert main(["claim", str(path), "--no-solve"]) == 0
    assert "verdict: consistent within 11%" in capsys.readouterr().out
    assert main(["claim", str(path), "--no-solve", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["claims"][0]["figures"][0]["ratio"] == pytest.approx(1 / 0.9)


def test_cli_claim_bad_file_is_a_clean_error(tmp_path, capsys):
    path = write_claim(tmp_path, tokens_per_s_per_user="fast")
    assert main(["claim", str(path)]) == 2
    assert "tokens_per_s_per_user: expected a number" in capsys.readouterr().err
    assert graphs("tiny-llama").decode is not None
