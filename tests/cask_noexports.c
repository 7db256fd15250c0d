/*  cask_noexports.c - a shared object that is not a task library: it has
    a function but no cask_exports table, which registering must refuse.
*/
int cask_noexports_answer (void);

int cask_noexports_answer (void)
{
    return 42;
}
