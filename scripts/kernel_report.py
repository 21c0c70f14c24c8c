#!/usr/bin/env python3
"""Kernel resource report for sm_90 from ptxas's --resource-usage output (scripts/kernel-report.sh).

Reads the <object>.resource-usage.txt files the CUDA compiler launcher keeps
(scripts/nvcc-resource-usage.sh, CMake option ADNN_CUDA_RESOURCE_USAGE), demangles the kernel
names (c++filt), computes the theoretical occupancy of each kernel for sm_90 from its registers
and shared memory at the block size its launcher uses, writes the Markdown report, and fails
(exit 1) on any register spill that docs/kernels.md does not list, with a reason, between
<!-- allowed-spills:begin --> and <!-- allowed-spills:end -->, and on a block size (a launcher's
literal or one the emulator traced) above the kernel's `__launch_bounds__` in the sources: a GPU
refuses that launch, and the emulator, where the attribute is empty, would not notice.

usage: kernel_report.py --allowed docs/kernels.md [--out REPORT.md] [--sources src/cuda] FILE...
"""
import argparse
import glob
import math
import os
import re
import subprocess
import sys

# sm_90 (H100/H200) limits: CUDA C Programming Guide, "Compute capabilities", and the occupancy calculator
SM90 = dict(regs_per_sm=65536, regs_per_block=65536, regs_per_thread=255, reg_alloc_unit=256,
            threads_per_sm=2048, warps_per_sm=64, blocks_per_sm=32, smem_per_sm=228 * 1024,
            smem_per_block=227 * 1024, smem_reserved_per_block=1024, smem_alloc_unit=128)


def occupancy(regs, smem_bytes, threads, lim=SM90):
    """Theoretical occupancy (active warps / 64) and the limiting resource, or (0, why) if it cannot launch."""
    warps = math.ceil(threads / 32)
    regs_per_warp = math.ceil(max(regs, 1) * 32 / lim["reg_alloc_unit"]) * lim["reg_alloc_unit"]
    if regs > lim["regs_per_thread"] or regs_per_warp * warps > lim["regs_per_block"]:
        return 0.0, "registers"
    if smem_bytes > lim["smem_per_block"]:
        return 0.0, "shared memory"
    smem = math.ceil((smem_bytes + lim["smem_reserved_per_block"]) / lim["smem_alloc_unit"]) * lim["smem_alloc_unit"]
    limits = {
        "blocks": lim["blocks_per_sm"],
        "warps": lim["warps_per_sm"] // warps,
        "threads": lim["threads_per_sm"] // threads,
        "registers": (lim["regs_per_sm"] // regs_per_warp) // warps,
        "shared memory": lim["smem_per_sm"] // smem,
    }
    why = min(limits, key=lambda k: limits[k])
    blocks = limits[why]
    return blocks * warps / lim["warps_per_sm"], why


def parse_resource_usage(text):
    """ptxas --resource-usage lines -> list of dicts (sm_90 entries only)."""
    out, cur, prev = [], None, ""
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'", line)
        if m:
            cur = dict(mangled=m.group(1), arch=m.group(2), regs=0, smem=0, stack=0, spill_st=0, spill_ld=0,
                       barriers=0)
            if cur["arch"].startswith("sm_90"):
                out.append(cur)
            continue
        if cur is None:
            prev = line
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and "Function properties for " + cur["mangled"] in prev:
            cur["stack"], cur["spill_st"], cur["spill_ld"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            cur["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            cur["smem"] = int(s.group(1)) if s else 0
            b = re.search(r"used (\d+) barriers", line)
            cur["barriers"] = int(b.group(1)) if b else 0
            cur = None
        prev = line
    return out


def demangle(names):
    if not names:
        return []
    try:
        r = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
        return r.stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return list(names)


def strip_params(demangled):
    """'void ns::k<float>(float const*, long)' -> 'ns::k<float>'."""
    s = demangled
    if s.startswith("void "):
        s = s[5:]
    depth = 0
    for i, ch in enumerate(s):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            return s[:i]
    return s


def base_name(name):
    """'adnn::kernels::k<float, 256>' -> 'k'."""
    n = name.split("<", 1)[0]
    return n.rsplit("::", 1)[-1]


def launcher_blocks(src_dirs):
    """kernel base name -> threads per block, from `ADNN_LAUNCH(kernel, grid, dim3(literals), ...)`."""
    blocks = {}
    paths = []
    for d in src_dirs:
        paths += sorted(glob.glob(os.path.join(d, "*.cpp")) + glob.glob(os.path.join(d, "*.cuh")))
    consts = {}  # `constexpr int name = 4;` in any of the files
    for path in paths:
        for c in re.finditer(r"constexpr\s+(?:int|unsigned|int64_t|long)\s+(\w+)\s*=\s*(\d+)\s*;",
                             open(path, encoding="utf-8").read()):
            consts[c.group(1)] = c.group(2)

    def evaluate(expr, text, at):
        """An integer for `256`, `32 * attn_warps`, or a variable `block` declared as `block(...)` before `at`."""
        for _ in range(3):
            if re.fullmatch(r"[\d\s*+()]+", expr):
                return eval(expr)  # digits and * + ( ) only
            v = re.fullmatch(r"\w+", expr.strip())
            if v and v.group(0) not in consts:
                decl = list(re.finditer(r"\b" + v.group(0) + r"\(([^()]*)\)", text[:at]))
                if not decl:
                    return None
                expr = decl[-1].group(1)
                continue
            expr = re.sub(r"\b[A-Za-z_]\w*\b", lambda w: consts.get(w.group(0), w.group(0)), expr)
        return eval(expr) if re.fullmatch(r"[\d\s*+()]+", expr) else None

    for path in paths:
        text = re.sub(r"\s+", " ", open(path, encoding="utf-8").read())
        for m in re.finditer(r"ADNN_LAUNCH\(\(?\s*(?:k::)?(\w+)", text):
            args, depth, cur, i = [], 0, "", m.start() + len("ADNN_LAUNCH(")
            while i < len(text) and len(args) < 4:
                ch = text[i]
                if ch in "([<":
                    depth += 1
                elif ch in ")]>":
                    depth -= 1
                    if depth < 0:
                        break
                if ch == "," and depth == 0:
                    args.append(cur.strip())
                    cur = ""
                else:
                    cur += ch
                i += 1
            if len(args) < 3:
                continue
            d = re.fullmatch(r"dim3\((.*)\)", args[2])
            dims = [x.strip() for x in d.group(1).split(",")] if d else [args[2]]
            n = 1
            for x in dims:
                v = evaluate(x, text, m.start())
                n = n * v if (v is not None and n is not None) else None
            blocks.setdefault(m.group(1), set()).add(n if n is not None else args[2])
    return blocks


def launch_bounds(src_dirs):
    """kernel base name -> the maximum threads per block of its `__launch_bounds__(N[, ...])` (an integer N)."""
    bounds = {}
    for d in src_dirs:
        for path in sorted(glob.glob(os.path.join(d, "*.cpp")) + glob.glob(os.path.join(d, "*.cuh"))):
            text = re.sub(r"\s+", " ", open(path, encoding="utf-8").read())
            for m in re.finditer(r"__launch_bounds__\(", text):
                if text[:m.start()].rstrip().endswith("define"):
                    continue  # the emulator's empty #define __launch_bounds__(...)
                depth, i = 1, m.end()
                while i < len(text) and depth:
                    depth += {"(": 1, ")": -1}.get(text[i], 0)
                    i += 1
                args = text[m.end():i - 1].split(",")
                name = re.match(r"\s*(\w+)\s*\(", text[i:])
                if name and re.fullmatch(r"\s*\d+\s*", args[0]):
                    bounds[name.group(1)] = int(args[0])
    return bounds


def traced_blocks(paths):
    """kernel base name -> threads per block seen by the emulator (`adnn-fer profile --out` tables)."""
    blocks = {}
    for path in paths:
        for line in open(path, encoding="utf-8"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) > 3 and cells[2].isdigit() and not cells[0].startswith("-"):
                blocks.setdefault(base_name(cells[0].split(" ")[0]), set()).add(int(cells[2]))
    return blocks


def allowed_spills(path):
    """Kernel names (as in the report) listed between the allowed-spills markers, each with its reason."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r"<!-- allowed-spills:begin -->(.*?)<!-- allowed-spills:end -->", text, re.S)
    if not m:
        sys.exit(f"kernel_report: {path} has no <!-- allowed-spills:begin --> ... <!-- allowed-spills:end --> list")
    allowed = {}
    for line in m.group(1).splitlines():
        e = re.match(r"\s*-\s*`([^`]+)`\s*(?:[:—-]+\s*(.*))?$", line)
        if not e:
            continue
        reason = (e.group(2) or "").strip()
        if not reason:
            sys.exit(f"kernel_report: {path}: the allowed spill `{e.group(1)}` gives no reason")
        allowed[e.group(1)] = reason
    return allowed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="*.resource-usage.txt files (ptxas --resource-usage output)")
    ap.add_argument("--allowed", required=True, help="docs/kernels.md: the list of allowed spills")
    ap.add_argument("--sources", action="append", default=[],
                    help="a directory of launchers (src/cuda, kernels) whose dim3(...) literals give block sizes")
    ap.add_argument("--trace", action="append", default=[],
                    help="an `adnn-fer profile --out` table: block sizes of kernels whose launcher computes them")
    ap.add_argument("--out", default=None, help="write the Markdown report here (-: standard output)")
    ap.add_argument("--command", default="scripts/kernel-report.sh", help="the command named in the report")
    a = ap.parse_args(argv)

    kernels = []
    for f in a.files:
        for k in parse_resource_usage(open(f, encoding="utf-8").read()):
            k["object"] = os.path.basename(f).replace(".o.resource-usage.txt", "")
            kernels.append(k)
    if not kernels:
        sys.exit("kernel_report: no sm_90 kernel in " + " ".join(a.files) + " (built with --resource-usage for sm_90?)")
    for k, d in zip(kernels, demangle([k["mangled"] for k in kernels])):
        k["name"] = strip_params(d).replace("adnn::kernels::", "")
    blocks = launcher_blocks(a.sources)
    traced = traced_blocks(a.trace)
    bounds = launch_bounds(a.sources)
    allowed = allowed_spills(a.allowed)

    rows, unlisted, listed_used, over_bounds = [], [], set(), []
    for k in sorted(kernels, key=lambda k: (k["object"], k["name"])):
        spills = k["spill_st"] + k["spill_ld"]
        if spills:
            if k["name"] in allowed:
                listed_used.add(k["name"])
            else:
                unlisted.append(k)
        bs = blocks.get(base_name(k["name"]), set())
        nums = sorted(b for b in bs if isinstance(b, int))
        exprs = sorted(b for b in bs if not isinstance(b, int))
        source = ""
        if not nums and base_name(k["name"]) in traced:
            nums, source = sorted(traced[base_name(k["name"])]), " traced"
        if nums:
            occ = []
            for n in nums:
                o, why = occupancy(k["regs"], k["smem"], n)
                occ.append(f"{100 * o:.0f}% @{n}{source} ({why})")
            occ_text = ", ".join(occ)
        else:
            occ_text = "block set at run time" if exprs else "launcher not found"
        if exprs:
            occ_text += "; " + ", ".join(f"`dim3({e[5:-1] if e.startswith('dim3(') else e})`" for e in exprs)
        bound = bounds.get(base_name(k["name"]))
        if bound is not None:
            # a block above the kernel's __launch_bounds__ is refused by a GPU at launch; the
            # emulator, where the attribute is empty, would run it
            seen = set(nums) | set(traced.get(base_name(k["name"]), set()))
            over_bounds += [(k, n, bound) for n in sorted(seen) if n > bound]
            occ_text += f"; `__launch_bounds__({bound})`"
        rows.append((k, spills, occ_text))

    lines = [
        "# Kernel resource report (sm_90)",
        "",
        f"Generated by `{a.command}` from ptxas's `--resource-usage` output of the real CUDA build "
        "(nvcc, sm_90); docs/kernels.md explains the columns and lists the allowed spills.",
        "Theoretical occupancy = active warps per SM / 64 at the launcher's block size, limited by blocks (32), "
        "warps (64), threads (2048), registers (65536 per SM, allocated per warp in units of 256) or shared memory "
        "(228 KiB per SM, 1 KiB reserved per block, 128-byte units). Static shared memory only: a kernel's "
        "dynamic shared memory (the launch's third argument) lowers it further; `adnn-fer profile` records it "
        "per launch. `@N` is the block size from the launcher's `dim3` literal, `@N traced` the one the emulator "
        "recorded in `adnn-fer profile` (the --trace tables) where the launcher computes it; a kernel's "
        "`__launch_bounds__(N)` is named after them, and a block above N (a launch a GPU refuses) fails the report.",
        "",
        f"{len(kernels)} kernel instantiations; {sum(1 for r in rows if r[1])} spill "
        f"({len(unlisted)} not listed in docs/kernels.md).",
        "",
        "| object | kernel | registers | static smem B | stack B | spill st/ld B | barriers | theoretical occupancy |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for k, spills, occ_text in rows:
        name = k["name"].replace("|", "/")
        sp = f"**{k['spill_st']}/{k['spill_ld']}**" if spills else "0/0"
        lines.append(f"| {k['object']} | `{name}` | {k['regs']} | {k['smem']} | {k['stack']} | {sp} | "
                     f"{k['barriers']} | {occ_text} |")
    report = "\n".join(lines) + "\n"
    if a.out == "-":
        sys.stdout.write(report)
    elif a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(report)
        print(f"kernel_report: wrote {a.out} ({len(kernels)} kernels)")
    for name in sorted(set(allowed) - listed_used):
        print(f"kernel_report: note: `{name}` is listed as an allowed spill in {a.allowed} but does not spill")
    for k, n, bound in over_bounds:
        print(f"kernel_report: error: {k['name']} ({k['object']}) is launched with {n} threads per block, above "
              f"its __launch_bounds__({bound}): a GPU refuses the launch", file=sys.stderr)
    if unlisted:
        for k in unlisted:
            print(f"kernel_report: error: {k['name']} ({k['object']}) spills {k['spill_st']} bytes stored / "
                  f"{k['spill_ld']} loaded and is not listed, with its reason, in {a.allowed} (allowed spills)",
                  file=sys.stderr)
        return 1
    return 1 if over_bounds else 0


if __name__ == "__main__":
    sys.exit(main())
