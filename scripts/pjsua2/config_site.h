/* pjproject build for the ivr engine: a server UA carrying hundreds of calls in one process.
 * Copied to pjlib/include/pj/config_site.h by scripts/build-pjsua2.sh; its hash is part of the
 * cache key of the built wheel, so changing a line here rebuilds. */
#define PJ_DEBUG                        0   /* no assertions/debug checks in the hot path */
#define PJ_OS_HAS_CHECK_STACK           0
#define PJSIP_UDP_SO_RCVBUF_SIZE        (4 * 1024 * 1024)  /* bursts of INVITEs */
#define PJSIP_UDP_SO_SNDBUF_SIZE        (4 * 1024 * 1024)

/* calls and what each call holds */
#define PJSUA_MAX_CALLS                 512
#define PJSUA_MAX_PLAYERS               1024
#define PJSUA_MAX_RECORDERS             512
#define PJSUA_MAX_CONF_PORTS            2048
#define PJSUA_MAX_ACC                   16
#define PJSIP_MAX_TSX_COUNT             (16 * 1024 - 1)
#define PJSIP_MAX_DIALOG_COUNT          (16 * 1024 - 1)

/* sockets: two per call (RTP, RTCP) plus SIP; epoll, no select() FD_SETSIZE cap */
#define PJ_IOQUEUE_MAX_HANDLES          4096
#define PJ_IOQUEUE_HAS_SAFE_UNREG       1

/* no camera, no sound card: media comes from the network and from files */
#define PJMEDIA_HAS_VIDEO               0
#define PJMEDIA_AUDIO_DEV_HAS_NULL_AUDIO 1

/* SRTP (SDES) through the bundled libsrtp with OpenSSL's ciphers */
#define PJMEDIA_HAS_SRTP                1
