/*  cask_keygen.c - the cask-keygen command: CurveZMQ key pairs for a
    cluster's broker, workers and clients.

    cask-keygen [--dir DIR] [--allow DIR] [--force] NAME...

    For each NAME, writes DIR/NAME (the public certificate, to hand out)
    and DIR/NAME_secret (the pair, readable by its owner only) in czmq's
    zcert format, and prints "NAME PUBLIC_KEY". With --allow, the public
    certificate also goes into that directory: the one cask-broker and
    cask-worker take with --curve-allow. Existing files are kept unless
    --force.
*/
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: cask-keygen [--dir DIR] [--allow DIR] [--force] NAME...\n"
        "\n"
        "Makes a CurveZMQ key pair for each NAME, for cask-broker, cask-worker and\n"
        "clients (--curve-cert, cask_client_new_secure): DIR/NAME holds the public\n"
        "key (hand it out), DIR/NAME_secret the pair (keep it; mode 0600). Prints\n"
        "NAME and its public key.\n"
        "\n"
        "  --dir DIR     where to write the pairs (default: the current directory;\n"
        "                made if missing)\n"
        "  --allow DIR   also copy each public certificate into DIR, the directory\n"
        "                of the keys let in (--curve-allow); made if missing\n"
        "  --force       overwrite existing files\n"
        "  --help        show this and exit\n"
        "\n"
        "A cluster: cask-keygen --dir keys --allow keys/allowed workers alice\n"
        "           cask-keygen --dir keys broker\n"
        "then the broker takes --curve-cert keys/broker --curve-allow keys/allowed,\n"
        "each worker --curve-cert keys/workers --curve-broker-key keys/broker\n"
        "--curve-allow keys/allowed, and alice's programs CASK_CURVE_CERT=keys/alice\n"
        "CASK_CURVE_BROKER_KEY=keys/broker CASK_CURVE_WORKERS_KEY=keys/workers.\n");
}

//  A name is one path component, not hidden, not ending in _secret.
static bool
s_name_ok (const char *name)
{
    size_t length = strlen (name);
    return length > 0 && length <= 200 && name [0] != '.' && !strchr (name, '/')
        && !(length >= 7 && strcmp (name + length - 7, "_secret") == 0);
}

static int
s_make_dir (const char *path)
{
    struct stat info;
    if (mkdir (path, 0755) && errno != EEXIST) {
        fprintf (stderr, "cask-keygen: cannot make %s: %s\n", path, strerror (errno));
        return -1;
    }
    if (stat (path, &info) || !S_ISDIR (info.st_mode)) {
        fprintf (stderr, "cask-keygen: %s is not a directory\n", path);
        return -1;
    }
    return 0;
}

static bool
s_exists (const char *path)
{
    struct stat info;
    return stat (path, &info) == 0;
}

//  Makes the pair of name. Returns 0 or -1 (said why).
static int
s_keygen (const char *name, const char *dir, const char *allow, bool force)
{
    char public_path [4096], secret_path [4096], allow_path [4096];
    snprintf (public_path, sizeof public_path, "%s/%s", dir, name);
    snprintf (secret_path, sizeof secret_path, "%s/%s_secret", dir, name);
    snprintf (allow_path, sizeof allow_path, "%s/%s", allow ? allow : "", name);
    const char *existing = s_exists (public_path) ? public_path
                         : s_exists (secret_path) ? secret_path
                         : allow && s_exists (allow_path) ? allow_path : NULL;
    if (existing && !force) {
        fprintf (stderr, "cask-keygen: %s exists (--force replaces it)\n", existing);
        return -1;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "cask-keygen: cannot make a key pair\n");
        return -1;
    }
    zcert_set_meta (cert, "name", "%s", name);
    //  The secret file is made readable by its owner only, from the start
    remove (secret_path);
    mode_t mask = umask (077);
    int rc = zcert_save (cert, public_path);
    umask (mask);
    if (rc == 0)
        rc = chmod (public_path, 0644);
    if (rc == 0 && allow) {
        rc = zcert_save_public (cert, allow_path);
        if (rc == 0)
            rc = chmod (allow_path, 0644);
    }
    if (rc)
        fprintf (stderr, "cask-keygen: cannot write the certificates of %s: %s\n", name,
                 strerror (errno));
    else
        printf ("%s %s\n", name, zcert_public_txt (cert));
    zcert_destroy (&cert);
    return rc ? -1 : 0;
}

int
main (int argc, char *argv [])
{
    static const struct option longopts [] = {
        { "dir", required_argument, NULL, 'd' },
        { "allow", required_argument, NULL, 'a' },
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir = ".", *allow = NULL;
    bool force = false;
    int option;
    while ((option = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (option) {
            case 'd': dir = optarg; break;
            case 'a': allow = optarg; break;
            case 'f': force = true; break;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 2;
        }
    }
    if (optind == argc) {
        s_usage (stderr);
        return 2;
    }
    for (int index = optind; index < argc; index++)
        if (!s_name_ok (argv [index])) {
            fprintf (stderr, "cask-keygen: '%s' is not a name for a key pair (one file name, "
                     "not hidden, not ending in _secret)\n", argv [index]);
            return 2;
        }
    if (s_make_dir (dir) || (allow && s_make_dir (allow)))
        return 1;
    int rc = 0;
    for (int index = optind; index < argc && rc == 0; index++)
        rc = s_keygen (argv [index], dir, allow, force);
    return rc ? 1 : 0;
}
