/*
 * Fiber context switch for x86-64, System V ABI, ELF, GNU as.
 *
 *   void  blz__ctx_switch(void **save_sp, void *new_sp);
 *   void *blz__ctx_init(void *stack_top, void (*fn)(void *), void *arg);
 *
 * A switched-out context is nothing but its stack pointer: blz__ctx_switch pushes
 * the callee-saved state onto the current stack, stores rsp in *save_sp, loads
 * new_sp and pops the other context's state in the same order. Everything the
 * ABI lets a callee clobber (rax, rcx, rdx, rsi, rdi, r8-r11, xmm0-15, the MXCSR
 * and x87 status flags) is dead across the call, so it is not saved.
 *
 * The frame of a switched-out context (8-byte slots, addresses grow upwards):
 *
 *            +------------------------------+
 *     +56    | return address               |  a fresh context: blz__ctx_start
 *     +48    | rbp                          |  a fresh context: 0 (ends frame chains)
 *     +40    | rbx                          |  a fresh context: arg
 *     +32    | r12                          |  a fresh context: fn
 *     +24    | r13                          |
 *     +16    | r14                          |
 *      +8    | r15                          |
 *      +0    | MXCSR (4) | x87 CW (2) | 0(2) |
 *            +------------------------------+  <- the saved sp (*save_sp, new_sp)
 *
 * The control bits of MXCSR and the x87 control word are callee-saved in the
 * SysV ABI, so each context keeps its own rounding mode and exception masks: a
 * fiber that sets a rounding mode does not leak it into the thread that resumes
 * it, and finds it again after a suspend even on another thread. ldmxcsr and
 * fldcw are slow, so they run only when the control bits of the two contexts
 * differ; the status flags (MXCSR bits 0-5) are caller-saved and carried over.
 *
 * blz__ctx_init builds that frame below stack_top (rounded down to 16 bytes,
 * call it T) so that the first switch to it "returns" into blz__ctx_start with
 * rsp = T, which calls fn(arg) with the stack aligned as at any call. A fresh
 * context starts with the ABI's initial MXCSR (0x1F80) and x87 control word
 * (0x037F), not with its creator's. fn must never return (blz__ctx_start traps
 * with ud2 if it does).
 *
 * The CFI in blz__ctx_switch describes its frame, which has the same shape on
 * both stacks, so a debugger can unwind through a suspended switch.
 *
 * CET: the entry points begin with endbr64 so they are valid indirect-branch
 * targets under IBT, and the object is marked IBT-compatible when the compiler
 * builds with -fcf-protection. It is deliberately NOT marked SHSTK-compatible:
 * switching stacks by loading rsp breaks a hardware shadow stack, so the linker
 * leaves shadow stacks off for any program that links this file.
 */

    .text

    .globl  blz__ctx_switch
    .hidden blz__ctx_switch
    .type   blz__ctx_switch, @function
    .p2align 4
blz__ctx_switch:
    .cfi_startproc
    endbr64
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    pushq   $0                      /* the FP control slot, its padding zeroed for the compare */
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    (%rsp), %rcx            /* this context's FP control, kept for the compare */

    movq    %rsp, (%rdi)            /* *save_sp = rsp: this context is now switched out */
    movq    %rsi, %rsp              /* ...and from here on we run the other one */

    movq    (%rsp), %rax
    xorq    %rax, %rcx
    testq   $-64, %rcx              /* ~0x3f: ignore the MXCSR status flags */
    jnz     .Lload_fp
.Lfp_done:
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    ret

    /* Out of line: the two contexts run with different FP control settings. */
    .cfi_adjust_cfa_offset 56
    .cfi_rel_offset rbp, 48
    .cfi_rel_offset rbx, 40
    .cfi_rel_offset r12, 32
    .cfi_rel_offset r13, 24
    .cfi_rel_offset r14, 16
    .cfi_rel_offset r15, 8
.Lload_fp:
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    jmp     .Lfp_done
    .cfi_endproc
    .size   blz__ctx_switch, .-blz__ctx_switch


    .globl  blz__ctx_init
    .hidden blz__ctx_init
    .type   blz__ctx_init, @function
    .p2align 4
blz__ctx_init:
    .cfi_startproc
    endbr64
    andq    $-16, %rdi              /* T */
    leaq    -64(%rdi), %rax         /* the frame; blz__ctx_start will run with rsp = T */
    leaq    blz__ctx_start(%rip), %rcx
    movq    %rcx, 56(%rax)          /* return address */
    movq    $0, 48(%rax)            /* rbp */
    movq    %rdx, 40(%rax)          /* rbx = arg */
    movq    %rsi, 32(%rax)          /* r12 = fn */
    movq    $0, 24(%rax)            /* r13 */
    movq    $0, 16(%rax)            /* r14 */
    movq    $0, 8(%rax)             /* r15 */
    movabsq $0x037F00001F80, %rcx   /* x87 CW 0x037F at +4, MXCSR 0x1F80 at +0 */
    movq    %rcx, (%rax)
    ret
    .cfi_endproc
    .size   blz__ctx_init, .-blz__ctx_init


    /*
     * The first instruction a fresh context runs, entered by blz__ctx_switch's
     * ret with rsp 16-byte aligned. It has no caller: the undefined return
     * address tells unwinders and debuggers that the fiber's stack ends here.
     */
    .type   blz__ctx_start, @function
    .p2align 4
blz__ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    endbr64
    movq    %rbx, %rdi
    callq   *%r12
    ud2                             /* fn returned: there is nowhere to go */
    .cfi_endproc
    .size   blz__ctx_start, .-blz__ctx_start


    .section .note.GNU-stack,"",%progbits

#if defined(__CET__) && (__CET__ & 1)
    /* GNU property note: this object is IBT-compatible (bit 0), not SHSTK (bit 1). */
    .section .note.gnu.property,"a"
    .p2align 3
    .long   4                       /* n_namesz: "GNU\0" */
    .long   16                      /* n_descsz */
    .long   5                       /* n_type: NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000002              /* GNU_PROPERTY_X86_FEATURE_1_AND */
    .long   4                       /* pr_datasz */
    .long   1                       /* GNU_PROPERTY_X86_FEATURE_1_IBT */
    .p2align 3
#endif
