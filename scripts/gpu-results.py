#!/usr/bin/env python3
"""Turns a GPU kit run (scripts/gpu-check.sh OUT_DIR: OUT_DIR/summary.json) into
docs/results/<date>-<gpu>.md — every number with the command that produced it, the GPU, driver
and CUDA versions — and <same name>-bandwidth.svg, each memory-bound kernel's GB/s against the
measured device-to-device copy (the memory roof) and the datasheet's.

  python3 scripts/gpu-results.py OUT_DIR [--docs docs/results] [--name NAME]

Standard library only. The plot is an SVG written here rather than a PNG from matplotlib:
matplotlib is not on the CPU machine (where results are turned into docs) and Debian's would
pull ~100 MB into scripts/setup-debian.sh for one figure; an SVG renders in Markdown viewers,
diffs as text, and its labels stay readable at any size.
"""
import argparse
import json
import os
import re
import sys
from html import escape

DATASHEET_GBPS = {"H200": 4800.0, "H100": 3350.0}  # HBM bandwidth by the vendor's datasheets
BF16_DATASHEET_TFLOPS = 989.0  # dense bf16, H100/H200 SXM, by the vendor's datasheet

p = argparse.ArgumentParser()
p.add_argument("out_dir")
p.add_argument("--docs", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "results"))
p.add_argument("--name", default="")
a = p.parse_args()

with open(os.path.join(a.out_dir, "summary.json")) as f:
    S = json.load(f)
steps = {s["name"]: s for s in S.get("steps", [])}
dry = S.get("mode") == "dry-run"
gpu = S.get("gpu") or "none"
slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-") or "none"
if dry:
    slug = "dry-run"
name = a.name or f"{(S.get('started') or '0000-00-00')[:10]}-{slug}"
os.makedirs(a.docs, exist_ok=True)
md_path = os.path.join(a.docs, name + ".md")
svg_path = os.path.join(a.docs, name + "-bandwidth.svg")


def fmt(x, nd=1):
    if x is None:
        return "—"
    if isinstance(x, (int, float)):
        return f"{x:,.{nd}f}" if isinstance(x, float) else f"{x:,}"
    return str(x)


def cmd(s, i=0):
    c = s.get("commands") or []
    return f"`{c[i]}`" if i < len(c) else "—"


def cmd_where(s, test):
    """The step's first command for which test(command) holds (a skipped run shifts the others)."""
    return next((f"`{c}`" for c in s.get("commands") or [] if test(c)), "—")


L = []
L.append(f"# GPU kit results: {gpu}" + (" (dry run, emulated device)" if dry else ""))
L.append("")
L.append(f"`scripts/gpu-check.sh{' --dry-run' if dry else ''} OUT_DIR` at commit `{S.get('commit', '?')}`, "
         f"started {S.get('started')}, {S.get('elapsed_s')} s of a {S.get('budget_s')} s budget; "
         f"turned into this page by `python3 scripts/gpu-results.py OUT_DIR`.")
L.append("")
d0 = (steps.get("device") or {}).get("results") or {}
L.append("| | |\n|---|---|")
L.append(f"| GPU | {gpu} |")
L.append(f"| driver | {S.get('driver') or '—'} |")
L.append(f"| CUDA (driver API, nvidia-smi) | {S.get('cuda') or '—'} |")
L.append(f"| nvcc on the GPU machine | {d0.get('nvcc') or '—'} |")
L.append(f"| PyTorch there | {d0.get('torch') or '—'} |")
L.append(f"| host | {S.get('host')} |")
L.append("")
L.append("## Steps\n")
L.append("| step | status | seconds | note |\n|---|---|---|---|")
for s in S.get("steps", []):
    L.append(f"| {s['step']} {s['name']} | {s['status']} | {s['seconds']} | {s.get('note') or ''} |")
L.append("")

# ---- step 0
hbm = d0.get("hbm") or {}
copy_gbps = hbm.get("copy_GBps")
if steps.get("device"):
    s = steps["device"]
    L.append("## 0. Device and ceilings\n")
    if d0.get("missing_libraries"):
        L.append(f"Missing libraries: {d0['missing_libraries']}\n")
    if hbm:
        L.append(f"Command: {cmd(s, len(s['commands']) - 1)} (bench/bench_hbm.cpp)\n")
        L.append("| ceiling | value |\n|---|---|")
        L.append(f"| device-to-device copy, {fmt(hbm.get('copy_bytes'))} bytes, read + write | {fmt(copy_gbps)} GB/s "
                 f"(median of {hbm.get('copy_iters')}; data checked: {hbm.get('copy_checked')}) |")
        L.append(f"| f32 GEMM {hbm.get('gemm_n')}³ through adnn's matmul (cuBLAS) | {fmt(hbm.get('gemm_f32_TFLOPs'), 2)} TFLOP/s "
                 f"(data checked: {hbm.get('gemm_checked')}) |")
        L.append("")
        g16 = hbm.get("bf16_gemms") or []
        if g16:
            # the first product is the ceiling when it is the largest (the kit asks 8192³ first)
            peak = max((g.get("TFLOPs") or 0) for g in g16)
            L.append("bf16 products through adnn's matmul (cuBLASLt, f32 accumulation, bf16 out), the same command; "
                     f"% of the best measured here ({fmt(peak, 1)} TFLOP/s) and of the datasheet's dense bf16 "
                     f"({BF16_DATASHEET_TFLOPS:.0f} TFLOP/s, H100/H200 SXM). ADNN-FER paper's encoder at batch 32 has "
                     "1568 token rows, d_model 2048, d_ff 4096 (issue #15's goal: its GEMMs >= 70% of the bf16 peak).\n")
            L.append("| M x N x K | what | ms | TFLOP/s | % of measured best | % of datasheet | checked |")
            L.append("|---|---|---|---|---|---|---|")
            what = {(1568, 6144, 2048): "encoder QKV in-projection", (1568, 2048, 2048): "encoder out-projection",
                    (1568, 4096, 2048): "encoder FF1", (1568, 2048, 4096): "encoder FF2",
                    (6144, 2048, 1568): "encoder QKV weight gradient", (8192, 8192, 8192): "ceiling"}
            for g in g16:
                t = g.get("TFLOPs") or 0
                L.append(f"| {g['m']} x {g['n']} x {g['k']} | {what.get((g['m'], g['n'], g['k']), '')} | {fmt(g.get('ms'), 4)} | "
                         f"{fmt(t, 1)} | {100 * t / peak:.0f}% | {100 * t / BF16_DATASHEET_TFLOPS:.0f}% | {g.get('checked')} |")
            L.append("")

# ---- step 1
if steps.get("tests"):
    s = steps["tests"]
    r = s.get("results") or {}
    L.append("## 1. The cuda test suite on the device\n")
    L.append("| pass | command | cases | passed | failed | skipped | assertions | failed |\n|---|---|---|---|---|---|---|---|")
    for i, k in enumerate(["blocking", "async"]):
        t = r.get(k)
        if t:
            L.append(f"| {k} | {cmd(s, i)} | {fmt(t.get('test_cases'))} | {fmt(t.get('passed'))} | {fmt(t.get('failed'))} | "
                     f"{fmt(t.get('skipped'))} | {fmt(t.get('assertions'))} | {fmt(t.get('assertions_failed'))} |")
    L.append("")

# ---- step 2
if steps.get("sanitizer"):
    s = steps["sanitizer"]
    r = s.get("results") or {}
    L.append("## 2. compute-sanitizer\n")
    if not r:
        L.append(f"{s.get('note') or s['status']}\n")
    else:
        L.append("| tool | status | errors | hazards | command |\n|---|---|---|---|---|")
        for i, (tool, t) in enumerate(r.items()):
            L.append(f"| {tool} | {t.get('status')} | {fmt(t.get('errors'))} | {fmt(t.get('hazards'))} | {cmd(s, i)} |")
        L.append("")

# ---- step 3
rows = []  # (label, GB/s, TFLOP/s, time_us, source)
if steps.get("kernels"):
    s = steps["kernels"]
    r = s.get("results") or {}
    L.append("## 3. Kernels against baselines\n")
    for i, key in enumerate(["bench_cudnn", "bench_kernels"]):
        bj = r.get(key)
        if not bj:
            continue
        bench_cmd = next((c for c in s.get("commands", []) if c.startswith(key)), key)
        ctx = bj.get("context", {})
        L.append(f"### {key}\n\nCommand: `{bench_cmd}`" + (f" ({ctx.get('date', '')})" if ctx else "") + "\n")
        if bj.get("truncated"):
            L.append("The run was cut off by its time limit: the rows below are those it finished.\n")
        # adnn against its baseline, row pairs with the same arguments (time ratio: > 1 is adnn faster)
        pairs = [("BM_depthwise_adnn", "BM_depthwise_cudnn_nhwc", "depthwise vs cuDNN NHWC"),
                 ("BM_depthwise_adnn", "BM_depthwise_cudnn_nchw", "depthwise vs cuDNN NCHW"),
                 ("BM_se_adnn", "BM_se_cudnn", "squeeze-excite vs cuDNN+cuBLAS"),
                 ("BM_cbam_pools_adnn", "BM_cbam_pools_cudnn", "CBAM pools vs cudnnReduceTensor"),
                 ("BM_mbconv_adnn", "BM_mbconv_cudnn", "MBConv vs cuDNN composition"),
                 ("BM_attention_fused", "BM_attention_unfused", "attention fused vs unfused (cuBLAS)"),
                 ("BM_attention_math", "BM_attention_unfused", "attention math backend vs unfused (cuBLAS)"),
                 ("BM_attention_fused_f16", "BM_attention_unfused_f16", "f16 attention fused vs cuBLAS")]
        times = {}
        for b in bj.get("benchmarks", []):
            if b.get("run_type") != "aggregate" and not b.get("error_occurred") and b.get("real_time"):
                base, _, args = b["name"].replace("/manual_time", "").partition("/")
                times[(base, args)] = b["real_time"]
        cmp_rows = []
        for ours, theirs, title in pairs:
            for (base, args), t in times.items():
                if base == ours and (theirs, args) in times:
                    cmp_rows.append((title, args, t, times[(theirs, args)]))
        if cmp_rows:
            L.append("adnn against its baseline on the same inputs, same process (speed-up = baseline time / adnn "
                     "time; > 1: adnn faster). Arguments as in bench/bench_cudnn.cpp: depthwise N/H/W/C/k/stride/"
                     "backward, SE N/H/W/C/reduced, pools N/H/W/C, MBConv N/H/W/C/expand/k, attention "
                     "B/heads/L/head dim/backward.\n")
            L.append("| comparison | arguments | adnn µs | baseline µs | speed-up |\n|---|---|---|---|---|")
            for title, args, t, u in cmp_rows:
                L.append(f"| {title} | {args} | {fmt(t, 1)} | {fmt(u, 1)} | {u / t:.2f}x |")
            L.append("")
        L.append("| benchmark | time (µs) | GB/s | % of copy | TFLOP/s |\n|---|---|---|---|---|")
        for b in bj.get("benchmarks", []):
            if b.get("run_type") == "aggregate":
                continue
            if b.get("error_occurred"):  # e.g. its validation failed: no time is reported for a wrong result
                L.append(f"| {b['name']} | — | — | — | FAILED: {b.get('error_message', '')} |")
                continue
            gbs = b.get("GB/s")
            tfl = b.get("TFLOP/s")
            gbs = gbs / 1e9 if isinstance(gbs, (int, float)) and gbs > 1e6 else gbs  # rates may come per second
            pct = f"{100 * gbs / copy_gbps:.0f}%" if gbs and copy_gbps else "—"
            t = b.get("real_time")
            lab = f" ({b['label']})" if b.get("label") else ""  # cuDNN algorithms; calls per event pair
            L.append(f"| {b['name']}{lab} | {fmt(t, 1)} | {fmt(gbs)} | {pct} | {fmt(tfl, 2) if tfl else '—'} |")
            if gbs:
                rows.append((b["name"].replace("/manual_time", ""), gbs, key))
        L.append("")
    if not any(r.get(k) for k in ["bench_cudnn", "bench_kernels"]):
        L.append(f"{s.get('note') or s['status']}\n")

# ---- step 4
if steps.get("e2e"):
    s = steps["e2e"]
    r = s.get("results") or {}
    L.append("## 4. End to end: ADNN-FER against its PyTorch twin\n")
    L.append("| what | adnn | command |\n|---|---|---|")
    f32_train = cmd_where(s, lambda c: "--train" in c and "--precision" not in c)
    bf16_train = cmd_where(s, lambda c: "--train" in c and "--precision bf16" in c)
    infer = cmd_where(s, lambda c: c.startswith("adnn-fer bench") and "--train" not in c)
    L.append(f"| {r.get('model')} training, f32, img/s | {fmt(r.get('adnn_train_f32_img_s'))} | {f32_train} |")
    L.append(f"| peak device memory (MiB) | {fmt(r.get('adnn_train_peak_MiB'))} | same |")
    L.append(f"| training, bf16 autocast (f32 master weights), img/s | {fmt(r.get('adnn_train_bf16_img_s'))} | "
             f"{bf16_train} |")
    L.append(f"| peak device memory, bf16 (MiB) | {fmt(r.get('adnn_train_bf16_peak_MiB'))} | same |")
    L.append(f"| batch-1 inference, eager, ms (median) | {fmt(r.get('adnn_infer_b1_eager_ms'), 3)} | {infer} |")
    if r.get("adnn_infer_b1_graph_ms") is not None:
        graph = cmd_where(s, lambda c: c.startswith("adnn-fer bench") and "--graph" in c)
        L.append(f"| batch-1 inference, CUDA graph replay, ms (median) | {fmt(r.get('adnn_infer_b1_graph_ms'), 3)} | {graph} |")
    L.append("")
    tw = r.get("torch_twin")
    if tw:
        L.append(f"PyTorch twin: `{tw.get('command')}` — {tw.get('framework')}, {tw.get('device')}, backbone "
                 f"{tw.get('backbone_source')}; shape {json.dumps(tw.get('shape'))}\n")
        L.append("| precision | channels_last | params | train img/s | peak MiB | batch-1 eager ms |\n|---|---|---|---|---|---|")
        for x in tw.get("results", []):
            L.append(f"| {x['precision']} | {x['channels_last']} | {fmt(x['params'])} | {fmt(x['train_img_s'])} | "
                     f"{fmt(x.get('train_peak_MiB'))} | {fmt(x['infer_b1_eager_ms'], 3)} |")
        L.append("")
        # issue #15's goals: adnn bf16 training >= 1.3x PyTorch AMP bf16 (channels_last), peak memory <= its
        amp = next((x for x in tw.get("results", []) if x.get("precision") == "AMP bf16"), None)
        ours, ours_mem = r.get("adnn_train_bf16_img_s"), r.get("adnn_train_bf16_peak_MiB")
        if amp and isinstance(ours, (int, float)) and amp.get("train_img_s") and not dry:  # (dry: nano vs --tiny)
            L.append(f"bf16 training, adnn / PyTorch AMP: {ours / amp['train_img_s']:.2f}x the images per second "
                     f"(goal >= 1.3x); peak device memory {fmt(ours_mem)} MiB against {fmt(amp.get('train_peak_MiB'))} "
                     f"(goal: no more)\n")
    if s.get("note"):
        L.append(f"Note: {s['note']}\n")

# ---- step 5
if steps.get("nano"):
    s = steps["nano"]
    r = s.get("results") or {}
    L.append("## 5. A short adnn_fer_nano training run\n")
    if r:
        L.append(f"Command: {cmd(s)} on {r.get('train_images')} train / {r.get('val_images')} val FER2013 images "
                 "(the kit's slice)\n")
        L.append("| epochs | train loss first → last | val acc last | best | majority prior | loss fell | above prior | img/s |")
        L.append("|---|---|---|---|---|---|---|---|")
        L.append(f"| {r.get('epochs')} | {fmt(r.get('train_loss_first'), 4)} → {fmt(r.get('train_loss_last'), 4)} | "
                 f"{fmt(r.get('val_acc_last'), 4)} | {fmt(r.get('val_acc_best'), 4)} | {fmt(r.get('prior'), 4)} | "
                 f"{r.get('loss_fell')} | {r.get('acc_above_prior')} | {fmt(r.get('train_img_s'))} |")
        L.append("")
    if s.get("note"):
        L.append(f"Note: {s['note']}\n")


# ---- the plot
def svg(rows, copy_gbps, datasheet):
    W, bar_h, left, right, top = 900, 18, 330, 40, 50
    H = top + max(len(rows), 1) * (bar_h + 6) + 50
    vmax = max([r[1] for r in rows] + [copy_gbps or 0, datasheet or 0, 1.0]) * 1.05
    x = lambda v: left + (W - left - right) * v / vmax
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">Kernel bandwidth on {escape(gpu)} '
         f'(GB/s of compulsory traffic) vs the memory roof</text>']
    if not rows:
        o.append(f'<text x="{W / 2}" y="{top + 10}" text-anchor="middle">no kernel timings in this run'
                 f'{" (dry run: the emulator gives none)" if dry else ""}</text>')
    for i, (label, v, src) in enumerate(rows):
        y = top + i * (bar_h + 6)
        color = "#4878a8" if src == "bench_kernels" else ("#d08030" if "cudnn" in label or "unfused" in label else "#4878a8")
        o.append(f'<text x="{left - 6}" y="{y + bar_h - 5}" text-anchor="end">{escape(label[:52])}</text>')
        o.append(f'<rect x="{left}" y="{y}" width="{max(x(v) - left, 1):.1f}" height="{bar_h}" fill="{color}"/>')
        o.append(f'<text x="{x(v) + 4:.1f}" y="{y + bar_h - 5}">{v:,.0f}</text>')
    bottom = top + max(len(rows), 1) * (bar_h + 6)
    for v, lab, dash in [(copy_gbps, "measured copy", ""), (datasheet, "datasheet", ' stroke-dasharray="5,4"')]:
        if v:
            o.append(f'<line x1="{x(v):.1f}" y1="{top - 8}" x2="{x(v):.1f}" y2="{bottom}" stroke="#c03030"{dash}/>')
            o.append(f'<text x="{x(v) - 4:.1f}" y="{bottom + 14}" text-anchor="end" fill="#c03030">{lab} {v:,.0f} GB/s</text>')
    o.append(f'<text x="{left}" y="{H - 8}" fill="#555">blue: adnn; orange: cuDNN/cuBLAS baselines; '
             'red lines: the memory roof</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


datasheet = next((v for k, v in DATASHEET_GBPS.items() if k in gpu), None)
with open(svg_path, "w") as f:
    f.write(svg(rows, copy_gbps, datasheet))
L.append("## Bandwidth plot\n")
L.append(f"![kernel bandwidth vs the copy roof]({os.path.basename(svg_path)})\n")
with open(md_path, "w") as f:
    f.write("\n".join(L))
print(md_path)
print(svg_path)
