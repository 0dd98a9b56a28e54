#!/usr/bin/python3
"""Instructions of a callgrind run had the CPU's SHA extensions been used.

usage: sha_native.py BINARY RUN.callgrind -> prints "IR_NATIVE CALLS IR_AVX HW_PER_CALL"

valgrind does not implement the SHA extensions (sha256rnds2 ...) and hides
them from CPUID, so under callgrind ring computes SHA-256 (QUIC Initial key
derivation) with its AVX code: ~2,100 instructions a 64-byte block. On a CPU
with the extensions (this machine's has them: `grep sha_ni /proc/cpuinfo`)
ring runs sha256_block_data_order_hw instead. Its code for one block is
straight-line apart from the loop over blocks, so its instruction count for
a one-block call is the number of instructions from its start to its `ret`,
read from the binary with objdump. Every call ring makes for HKDF is one
block (checked: the AVX function's instructions divide exactly by its calls).
The estimate replaces each AVX call's instructions by that count.
"""
import re
import subprocess
import sys


def hw_one_block(binary):
    syms = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^([0-9a-f]+) \w (\S*sha256_block_data_order_hw)$", syms, re.M)
    if not m:
        return None
    start = int(m.group(1), 16)
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "--start-address=%d" % start,
                          "--stop-address=%d" % (start + 4096), binary],
                         capture_output=True, text=True, check=True).stdout
    n = 0
    for line in dis.splitlines():
        if not re.match(r"^\s+[0-9a-f]+:\t", line):
            continue
        n += 1
        if "\tret" in line:
            return n
    return None


def avx_cost(path):
    """(self instructions, calls) of the AVX SHA-256 function in a callgrind file."""
    names, cur_fn, cur_cfn, ir, calls = {}, None, None, 0, 0
    pending_calls = False

    def name_of(spec):
        m = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not m:
            return spec
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), "")

    positions = 1
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("positions:"):
            positions = len(line.split()) - 1
        elif line.startswith("fn="):
            cur_fn = name_of(line[3:])
        elif line.startswith("cfn="):
            cur_cfn = name_of(line[4:])
        elif line.startswith("calls="):
            if cur_cfn and "sha256_block_data_order_avx" in cur_cfn:
                calls += int(line[6:].split()[0])
            pending_calls = True
        elif line and (line[0].isdigit() or line[0] in "+-*"):
            parts = line.split()
            if pending_calls:  # the inclusive cost line of a call
                pending_calls = False
                continue
            if cur_fn and "sha256_block_data_order_avx" in cur_fn and len(parts) > positions:
                ir += int(parts[positions])
    return ir, calls


def main():
    binary, run = sys.argv[1], sys.argv[2]
    hw = hw_one_block(binary)
    ir, calls = avx_cost(run)
    total = None
    for line in open(run, errors="replace"):
        if line.startswith("summary:"):
            total = int(line.split()[1])
    if hw is None or total is None:
        print("- 0 0 0")
        return
    if calls and ir % calls:
        print("- %d %d %d" % (calls, ir, hw))  # multi-block calls: no estimate
        return
    print("%d %d %d %d" % (total - ir + calls * hw, calls, ir, hw))


main()
