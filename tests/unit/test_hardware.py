from common.hardware import choose_dtype, cpu_flags

AVX512_BF16 = "processor : 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n"
AVX2_ONLY = "processor : 0\nflags\t\t: fpu sse avx2 fma\n"


def test_flags_are_read_from_cpuinfo():
    assert {"avx2", "avx512_bf16"} <= cpu_flags(AVX512_BF16)


def test_bf16_only_where_the_cpu_has_it():
    # AVX2-only CPUs emulate bf16 ~3.5x slower than fp32 (measured on a 2-core AVX2 machine)
    assert choose_dtype(AVX2_ONLY, cuda=False) == "float32"
    assert choose_dtype(AVX512_BF16, cuda=False) == "bfloat16"
    assert choose_dtype("flags : avx2 amx_bf16\n", cuda=False) == "bfloat16"


def test_a_gpu_gets_bf16_only_from_compute_capability_8():
    """Hardening 16: every NVIDIA card got bf16; a T4 (7.5) and a V100 (7.0) have none."""
    assert choose_dtype(AVX2_ONLY, cuda=True, capabilities=[9.0]) == "bfloat16"  # H100
    assert choose_dtype(AVX2_ONLY, cuda=True, capabilities=[8.0, 8.6]) == "bfloat16"
    assert choose_dtype(AVX2_ONLY, cuda=True, capabilities=[7.5]) == "float16"  # T4
    assert choose_dtype(AVX2_ONLY, cuda=True, capabilities=[9.0, 7.0]) == "float16"  # + V100
    assert choose_dtype(AVX2_ONLY, cuda=True, capabilities=[]) == "float16"  # unknown: safe
