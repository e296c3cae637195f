/*
 * Fiber context switch for x86-64, System V ABI, ELF, GNU as.
 *
 *   bool  blz__ctx_switch(void **save_sp, void *new_sp, bool value);
 *   void *blz__ctx_init(void *stack_top, void (*fn)(void *), void *arg);
 *
 * A switched-out context is nothing but its stack pointer: blz__ctx_switch pushes
 * the callee-saved state onto the current stack, stores rsp in *save_sp, loads
 * new_sp and pops the other context's state in the same order. Everything the
 * ABI lets a callee clobber (rax, rcx, rdx, rsi, rdi, r8-r11, xmm0-15, the MXCSR
 * and x87 status flags) is dead across the call, so it is not saved.
 *
 * `value` travels with the switch: the other context's blz__ctx_switch call
 * returns it (as 0 or 1). fiber.c passes "the fiber is finished" that way, so
 * that blz__fiber_resume and blz__fiber_suspend can end in a tail call to the
 * switch, and the switch jumps straight back into their callers.
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
 *      +0    | MXCSR (4) | x87 CW (2) | -(2) |
 *            +------------------------------+  <- the saved sp (*save_sp, new_sp)
 *
 * Returning: the switch leaves by `pop %r8; jmp *%r8`, not `ret`. A `ret` here
 * would always be mispredicted, because the return-stack predictor expects the
 * call site on the old stack; an indirect jump is predicted from branch history,
 * which learns the alternation of a resume/suspend pair. With fiber.c reaching
 * the switch by tail calls, a resume/suspend round trip runs no `ret` at all.
 * On AMD Zen 3 that took the bare switch from 11.5 to 3 ns (without FP control).
 *
 * FP control: the control bits of MXCSR and the x87 control word are callee-
 * saved in the SysV ABI, so each context keeps its own rounding mode and
 * exception masks: a fiber that sets a rounding mode does not leak it into the
 * thread that resumes it, and finds it again after a suspend, even on another
 * thread. (The MXCSR status flags, bits 0-5, are caller-saved; they travel
 * with the control bits, which is harmless.) Both words are stored and
 * reloaded on every switch. Skipping the reload when the two contexts agree
 * looks cheaper but measured slower (AMD Zen 3: 8.3 against 6.5 ns a switch):
 * the compare must read back what stmxcsr just stored, and that load waits
 * for the store to complete. The save and restore of FP control cost about
 * 3.5 ns of those 6.5 ns; they buy ABI-correct fibers.
 *
 * blz__ctx_init builds that frame below stack_top (rounded down to 16 bytes,
 * call it T) so that the first switch to it lands in blz__ctx_start with
 * rsp = T, which calls fn(arg) with the stack aligned as at any call. A fresh
 * context starts with the ABI's initial MXCSR (0x1F80) and x87 control word
 * (0x037F), not with its creator's. fn must never return (blz__ctx_start traps
 * with ud2 if it does).
 *
 * The CFI in blz__ctx_switch describes its frame, which has the same shape on
 * both stacks, so a debugger can unwind through a suspended switch.
 *
 * CET: the entry points begin with endbr64, but the object carries no
 * .note.gnu.property, so a program that links it is not marked IBT- or SHSTK-
 * compatible and runs with both off. That is deliberate: the jump to a return
 * address lands where there is no endbr64 (IBT would fault), and switching
 * stacks by loading rsp leaves a hardware shadow stack behind (SHSTK would
 * fault at the next ret).
 */

    .text

    .globl  blz__ctx_switch
    .hidden blz__ctx_switch
    .type   blz__ctx_switch, @function
    .p2align 4
blz__ctx_switch:
    .cfi_startproc
    endbr64
    movzbl  %dl, %eax               /* value: what the other side's call returns */
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
    subq    $8, %rsp                /* the FP control slot */
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)

    movq    %rsp, (%rdi)            /* *save_sp = rsp: this context is now switched out */
    movq    %rsi, %rsp              /* ...and from here on we run the other one */

    ldmxcsr (%rsp)
    fldcw   4(%rsp)
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
    popq    %r8                     /* see "Returning" above */
    .cfi_adjust_cfa_offset -8
    .cfi_register rip, r8
    jmp     *%r8
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
     * final jump with rsp 16-byte aligned. It has no caller: the undefined return
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
