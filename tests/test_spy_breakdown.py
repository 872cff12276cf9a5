"""benchmarks/spy_breakdown.py classes py-spy samples by the generated-graph line they stand on."""

import subprocess
import sys

from conftest import ROOT, load_script

GRAPH = """def call(args):
    buf1 = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default(q, k, v, 0.0, True)
    extern_kernels.mm(a, b, out=buf2)
    cpp_fused_add_mul_0(buf2, buf3)
    buf4 = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default(g, q, k, v, o, lse, 0.0, True)
"""

LOOP = "<module> (rins/cli.py:1);_loop (rins/train.py:10);_optimise (rins/train.py:20)"


def test_samples_are_classed_by_the_graph_line_not_the_lost_native_frames(tmp_path):
    graphs = tmp_path / "torchinductor"
    (graphs / "ab").mkdir(parents=True)
    (graphs / "ab" / "cabc.py").write_text(GRAPH)
    raw = [  # MKL leaves whose native middle frames were lost: only the graph line says which op they belong to
        f"{LOOP};Runner.call (cabc.py:2);OpOverload.__call__ (torch/_ops.py:875);mkl_blas_def_sgemm_kernel_0_zen 6",
        f"{LOOP};Runner.call (cabc.py:3);mkl_blas_def_sgemm_kernel_0_zen 3",
        f"{LOOP};Runner.call (cabc.py:4);_mm256_add_ps (avxintrin.h:149) 1",
        f"{LOOP};Runner.call (cabc.py:5);OpOverload.__call__ (torch/_ops.py:875);mkl_blas_def_sgemm_mscale 8",
        f"{LOOP};_run (rins/losses.py:52);mkl_blas_def_sgemm_kernel_0_zen 2",
        "Thread._bootstrap (threading.py:1);TMonitor.run (tqdm/_monitor.py:60);Condition.wait 50",  # idle thread
    ]
    total, out = load_script("benchmarks/spy_breakdown.py").breakdown(raw, graphs)
    assert total == 20
    assert out == {"attention, forward (flash kernel)": 6, "dense matmuls in the blocks (GEMM)": 3,
                   "compiled elementwise (norms, RoPE, SwiGLU, residuals)": 1,
                   "attention, backward (flash kernel)": 8, "fused head + loss (its GEMMs included)": 2}
    spy = tmp_path / "spy.txt"
    spy.write_text("\n".join(raw) + "\n")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "spy_breakdown.py"), str(spy), "--graphs",
                          str(graphs)], capture_output=True, text=True, check=True)
    assert "20 samples of the training thread" in res.stdout and " 40.0%  attention, backward" in res.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "spy_breakdown.py"), str(spy), "--marker",
                          "no_such_frame"], capture_output=True, text=True)
    assert bad.returncode != 0 and "was the process training?" in bad.stderr
