/*
 * tests/process_group.c — blz_command_process_group: a child that leads a
 * new group (its group id is its PID), one that joins an existing group, the
 * default (the parent's group), and the refusals.
 *
 * Run once per backend.
 */
#include "process_common.h"

/* The process group the child reports for itself (field 5 of its stat). */
static long
child_pgrp(blz_command *cmd, blz_child **out)
{
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_spawn(cmd, out));
    char *s = proc_read_all(blz_child_pipe(*out, BLZ_STDOUT), NULL);
    long pgrp = strtol(s, NULL, 10);
    free(s);
    return pgrp;
}

static const char *const report[] = {"/bin/sh", "-c", "cut -d' ' -f5 /proc/$$/stat", NULL};

static void *
group_main(void *arg)
{
    (void) arg;
    /* The default: the parent's group. */
    blz_command *cmd = proc_cmd(report);
    blz_child *c;
    CHECK_EQ(child_pgrp(cmd, &c), (long) getpgrp());
    CHECK_OK(blz_child_wait(c, NULL));
    blz_child_free(c);

    /* 0: a new group, led by the child. */
    CHECK_OK(blz_command_process_group(cmd, 0));
    long pgrp = child_pgrp(cmd, &c);
    CHECK_EQ(pgrp, (long) blz_child_pid(c));
    CHECK_OK(blz_child_wait(c, NULL));
    blz_child_free(c);

    /* A positive id: join a group that exists (a leader still running). */
    blz_command *leader_cmd = proc_cmd((const char *[]){"/bin/sleep", "30", NULL});
    CHECK_OK(blz_command_process_group(leader_cmd, 0));
    CHECK_OK(blz_command_kill_on_drop(leader_cmd, true));
    blz_child *leader;
    CHECK_OK(blz_command_spawn(leader_cmd, &leader));
    CHECK_OK(blz_command_process_group(cmd, blz_child_pid(leader)));
    CHECK_EQ(child_pgrp(cmd, &c), (long) blz_child_pid(leader));
    CHECK_OK(blz_child_wait(c, NULL));
    blz_child_free(c);
    CHECK_OK(blz_child_kill(leader, SIGKILL));
    CHECK_OK(blz_child_wait(leader, NULL));
    blz_child_free(leader);
    blz_command_free(leader_cmd);

    CHECK_EQ(blz_command_process_group(cmd, -1), -EINVAL);
    CHECK_EQ(blz_command_spawn(cmd, &c), -EINVAL); /* the error sticks */
    CHECK_EQ(blz_command_process_group(NULL, 0), -EINVAL);
    blz_command_free(cmd);
    return NULL;
}

BLZ_TEST(process_groups)
{
    proc_run(2, group_main, NULL);
    proc_check_no_children();
}
