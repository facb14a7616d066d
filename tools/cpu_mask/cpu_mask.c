/* Run a program as if its CPU lacked some instruction sets, at native speed.

   Loaded with LD_PRELOAD, this turns on the kernel's CPUID faulting for the process
   (arch_prctl ARCH_SET_CPUID, Linux 4.12+ on a CPU whose flags list `cpuid_fault`), so every
   CPUID instruction traps; the SIGSEGV handler executes it for real and clears the bits
   CPU_MASK names before returning. Libraries that choose kernels by CPUID (onnxruntime's
   MLAS, numpy, torch) then choose those of the CPU described: "avx512" hides VNNI, AMX, BF16
   and every AVX-512 extension after Skylake-SP's, "avx2" hides every AVX-512 set as well (a Haswell). The instructions
   the chosen kernels run behave the same on every x86-64 CPU, so their results are the
   other CPU's results.

   Another SIGSEGV handler installed later (Python's faulthandler, for instance) is kept and
   called for every fault that is not a CPUID. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static struct sigaction chained; /* the program's own SIGSEGV handler, if it set one */
static int masking_avx512;      /* 1: hide every AVX-512 set too */
static int active;              /* CPU_MASK was set: CPUID faults */

static int set_cpuid(int enabled) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void masked_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    if (leaf == 7 && sub == 0) {
        /* what a Skylake-SP lacks: AVX512 IFMA, PF, ER; VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ;
           4VNNIW, 4FMAPS, VP2INTERSECT, FP16 and AMX (BF16, TILE, INT8) */
        r[1] &= ~((1u << 21) | (1u << 26) | (1u << 27));
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
        if (masking_avx512) /* and what a Haswell lacks besides: AVX512 F, DQ, CD, BW, VL */
            r[1] &= ~((1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31));
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~((1u << 4) | (1u << 5) | (1u << 23));     /* AVX_VNNI, AVX512_BF16, AVX_IFMA */
        r[3] &= ~((1u << 4) | (1u << 5));                  /* AVX_VNNI_INT8, AVX_NE_CONVERT */
    } else if (leaf == 0xd && sub == 0 && masking_avx512) {
        r[0] &= ~(0xe0u);                                  /* no AVX-512 register state */
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *regs = uc->uc_mcontext.gregs;
    const uint8_t *ip = (const uint8_t *)regs[REG_RIP];
    if (ip[0] == 0x0f && ip[1] == 0xa2) {
        uint32_t r[4];
        set_cpuid(1);
        masked_cpuid((uint32_t)regs[REG_RAX], (uint32_t)regs[REG_RCX], r);
        set_cpuid(0);
        regs[REG_RAX] = r[0];
        regs[REG_RBX] = r[1];
        regs[REG_RCX] = r[2];
        regs[REG_RDX] = r[3];
        regs[REG_RIP] += 2;
        return;
    }
    if (chained.sa_flags & SA_SIGINFO && chained.sa_sigaction) {
        chained.sa_sigaction(sig, info, context);
        return;
    }
    if (chained.sa_handler != SIG_DFL && chained.sa_handler != SIG_IGN && chained.sa_handler) {
        chained.sa_handler(sig);
        return;
    }
    signal(SIGSEGV, SIG_DFL); /* a real fault: die of it */
}

/* The program's sigaction: SIGSEGV handlers are kept for chaining, ours stays installed. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    static sigaction_fn real;
    if (!real) real = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (!active || sig != SIGSEGV) return real(sig, act, old);
    if (old) *old = chained;
    if (act) chained = *act;
    return 0;
}

__attribute__((constructor)) static void start(void) {
    const char *mask = getenv("CPU_MASK");
    if (!mask || !*mask) return;
    if (strcmp(mask, "avx2") == 0) masking_avx512 = 1;
    else if (strcmp(mask, "avx512") != 0) {
        fprintf(stderr, "cpu_mask: CPU_MASK must be avx512 or avx2, got %s\n", mask);
        _exit(2);
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction_fn real = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (real(SIGSEGV, &action, NULL) != 0 || set_cpuid(0) != 0) {
        perror("cpu_mask: CPUID faulting is not available here");
        _exit(2);
    }
    active = 1;
}
