/* api-job.c - a request answered from a worker thread.
 *
 * Engine calls block; the loop must not. api_job_start() runs the job's
 * function on libuv's pool and answers the connection on the loop, unless the
 * client left meanwhile (then the answer is dropped).
 */
#include <stdlib.h>
#include <uv.h>

#include "api/api-internal.h"
#include "util/xalloc.h"

struct api_job {
    uv_work_t work;
    struct http_conn *conn; /* NULL once the client left */
    api_job_fn run;
    void *data;
    void (*free_data)(void *data);
    int r;
    struct berr *e;
    json_t *answer;
};

static void job_run(uv_work_t *w)
{
    struct api_job *j = (struct api_job *)w;
    j->r = j->run(j->data, &j->answer, &j->e);
}

static void job_conn_closed(struct http_conn *c, void *data)
{
    (void)c;
    ((struct api_job *)data)->conn = NULL;
}

static void job_done(uv_work_t *w, int status)
{
    (void)status;
    struct api_job *j = (struct api_job *)w;
    if (j->conn) {
        http_conn_on_close(j->conn, NULL, NULL);
        if (j->r < 0)
            api_respond_berr(j->conn, j->r, j->e);
        else
            http_respond_json(j->conn, 200, j->answer ? TAKE_PTR(j->answer) : json_object());
    }
    json_decref(j->answer);
    berr_free(j->e);
    if (j->free_data)
        j->free_data(j->data);
    free(j);
}

void api_job_start(struct http_conn *c, api_job_fn run, void *data, void (*free_data)(void *data))
{
    struct api_job *j = xcalloc(1, sizeof(*j));
    j->conn = c;
    j->run = run;
    j->data = data;
    j->free_data = free_data;
    http_conn_on_close(c, job_conn_closed, j);
    uv_queue_work(uv_default_loop(), &j->work, job_run, job_done);
}
