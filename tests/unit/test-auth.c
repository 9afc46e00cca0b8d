/* test-auth.c - the token cache: a revoked token or a disabled user is
 * refused as soon as auth_forget is called, not only when the cache expires. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "store/accounts.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/xalloc.h"

struct fixture {
    char dir[64];
    struct store *store;
    struct auth *auth;
    int64_t user_id;
    char *token_id;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/berth-test-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    _cleanup_free_ char *db = xasprintf("%s/berth.db", f->dir);
    assert_int_equal(store_open(db, &f->store, NULL), 0);
    f->auth = auth_new(f->store);
    assert_int_equal(store_user_insert(f->store, "ann", "not-a-hash", false, NULL), 0);
    struct user_rec u = {0};
    assert_int_equal(store_user_get(f->store, "ann", &u, NULL), 0);
    f->user_id = u.id;
    user_rec_release(&u);
    _cleanup_free_ char *token = NULL;
    assert_int_equal(
        auth_issue_token(f->auth, f->user_id, "api", "t", 0, &token, &f->token_id, NULL, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    auth_free(f->auth);
    store_close(f->store);
    assert_int_equal(rm_rf(f->dir), 0);
    free(f->token_id);
    free(f);
    return 0;
}

static void assert_token_user(struct fixture *f, int want)
{
    struct auth_user u = {0};
    int r = auth_token_user(f->auth, f->token_id, &u);
    assert_int_equal(r, want);
    if (r == 0) {
        assert_int_equal(u.id, f->user_id);
        assert_string_equal(u.name, "ann");
        assert_string_equal(u.token_id, f->token_id);
    }
    auth_user_release(&u);
}

static void test_auth__revoked_token_is_refused_once_forgotten(void **state)
{
    struct fixture *f = *state;
    assert_token_user(f, 0);
    assert_int_equal(store_token_delete(f->store, f->token_id, -1), 0);
    assert_token_user(f, 0); /* the cache's few seconds: why the API calls auth_forget */
    auth_forget(f->auth);
    assert_token_user(f, -EACCES);
    assert_token_user(f, -EACCES);
}

static void test_auth__disabled_user_is_refused_once_forgotten(void **state)
{
    struct fixture *f = *state;
    assert_token_user(f, 0);
    assert_int_equal(store_user_set_disabled(f->store, "ann", true, NULL), 0);
    auth_forget(f->auth);
    assert_token_user(f, -EACCES);
    assert_int_equal(store_user_set_disabled(f->store, "ann", false, NULL), 0);
    assert_token_user(f, -EACCES);
    auth_forget(f->auth);
    assert_token_user(f, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth__revoked_token_is_refused_once_forgotten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth__disabled_user_is_refused_once_forgotten, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
