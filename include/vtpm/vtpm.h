/*
 * libvtpm — stable C ABI for hypervisor tools.
 *
 * One vTPM instance per process (libtpms is a process-wide singleton). All
 * functions return a swtpm/TPM result code: 0 on success, otherwise the code
 * (e.g. 0x09 TPM_FAIL, 0x03 TPM_BAD_PARAMETER, 0x21 TPM_DECRYPT_ERROR,
 * 0x800 TPM_RETRY for "no such state blob"); vtpm_last_error() then says
 * what was wrong. Buffers returned through uint8_t** are released with
 * vtpm_free(). Key bytes passed in are copied and wiped on vtpm_close().
 */
#ifndef VTPM_VTPM_H
#define VTPM_VTPM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define VTPM_API __attribute__((visibility("default")))
#else
#define VTPM_API
#endif

typedef struct vtpm_instance vtpm_t;

/** TPM version emulated by an instance. */
enum vtpm_tpm_version { VTPM_TPM_1_2 = 1, VTPM_TPM_2_0 = 2 };

/** State blob types, as on swtpm's control channel. */
enum vtpm_blob_type { VTPM_BLOB_PERMANENT = 1, VTPM_BLOB_VOLATILE = 2, VTPM_BLOB_SAVESTATE = 3 };

/** Flags of vtpm_options.flags. */
enum vtpm_open_flags {
    /** Do not send TPM2_Shutdown before powering off (swtpm's disable-auto-shutdown). */
    VTPM_OPEN_NO_AUTO_SHUTDOWN = 1u << 0,
    /** Reject locality 4. */
    VTPM_OPEN_REJECT_LOCALITY_4 = 1u << 1,
};

/** Options for vtpm_open(). Zero-initialise, then set struct_size. */
typedef struct vtpm_options {
    uint32_t struct_size;          /**< sizeof(vtpm_options), for ABI evolution */
    int tpm_version;               /**< enum vtpm_tpm_version */
    const char *state_dir;         /**< swtpm-compatible state directory (must exist) */
    uint32_t state_file_mode;      /**< mode of state files, 0 = 0640 */
    const uint8_t *state_key;      /**< optional 16/32-byte AES key for state at rest */
    size_t state_key_len;
    const uint8_t *migration_key;  /**< optional 16/32-byte AES key for state blobs */
    size_t migration_key_len;
    uint32_t flags;                /**< enum vtpm_open_flags */
} vtpm_options;

/** Library version string, e.g. "0.1.0". */
VTPM_API const char *vtpm_version(void);

/** Create the process's vTPM instance (not yet powered on). */
VTPM_API uint32_t vtpm_open(const vtpm_options *opts, vtpm_t **out);

/** Power off (TPM2_Shutdown first unless disabled) and free the instance. NULL is ignored. */
VTPM_API void vtpm_close(vtpm_t *tpm);

/** Message describing the last failure on this instance ("" if none). Valid until the next call. */
VTPM_API const char *vtpm_last_error(const vtpm_t *tpm);

/** Message for a failure of vtpm_open() (which has no instance yet). */
VTPM_API const char *vtpm_open_error(void);

/** Power on (CMD_INIT). delete_volatile != 0 removes the volatile state file afterwards. */
VTPM_API uint32_t vtpm_init(vtpm_t *tpm, int delete_volatile);

/** Power off (CMD_STOP). */
VTPM_API uint32_t vtpm_stop(vtpm_t *tpm);

/**
 * Execute one TPM command. The response (at most 4096 + 8 bytes) is written
 * to rsp; *rsp_len receives its size. TPM errors are inside the response; the
 * return value is non-zero only if the response did not fit.
 */
VTPM_API uint32_t vtpm_process(vtpm_t *tpm, const uint8_t *cmd, size_t cmd_len,
                               uint8_t *rsp, size_t rsp_cap, size_t *rsp_len);

/**
 * Handle one raw swtpm control-channel message (4-byte code + body) exactly
 * as the bridge does; the response bytes are returned in *rsp (vtpm_free).
 * CMD_SET_DATAFD is refused (there is no transport here).
 */
VTPM_API uint32_t vtpm_ctrl(vtpm_t *tpm, const uint8_t *msg, size_t msg_len, uint8_t **rsp, size_t *rsp_len);

/**
 * Fetch a state blob in swtpm's migration format (what QEMU carries). The TPM
 * must be running. decrypted != 0 asks for no state-key encryption.
 */
VTPM_API uint32_t vtpm_get_state_blob(vtpm_t *tpm, int type, int decrypted, uint8_t **blob, size_t *blob_len,
                                      uint32_t *state_flags);

/** Hand over a state blob (TPM stopped); it is used by the next vtpm_init(). */
VTPM_API uint32_t vtpm_set_state_blob(vtpm_t *tpm, int type, uint32_t state_flags, const uint8_t *blob,
                                      size_t blob_len);

/**
 * What a tenant or attestation service checks (vtpm-attest verify). Text
 * fields are NUL-terminated; optional ones may be NULL.
 */
typedef struct vtpm_verify_params {
    size_t struct_size;            /**< sizeof(vtpm_verify_params) as the caller knows it */
    const char *host_ak_cert_pem;  /**< the host AK certificate (PEM) */
    const char *ca_pem;            /**< trusted privacy-CA certificates, root(s) included (PEM bundle) */
    const char *user_cert_pem;     /**< the tenant's certificate the identity was issued for (PEM) */
    const uint8_t *nonce;          /**< the verifier's nonce, at least 16 bytes */
    size_t nonce_len;
    const uint8_t *evidence;       /**< evidence file contents (vtpm-attest quote) */
    size_t evidence_len;
    const char *vm_uuid;           /**< expected VM UUID, any case (required: NULL fails at step "inputs";
                                        not a UUID: a parameter error) */
    const char *reference;         /**< reference values ("sha256:9 HEX" lines, one pin per line, each once,
                                        at least one), or NULL */
    const char *host_record;       /**< the host's record of the VM (uniqueness), or NULL */
    uint32_t required_host_pcrs;   /**< bit mask of host PCRs the AuthKey must be bound to; 0: PCRs 0-9;
                                        bits 24-31 set: a parameter error */
    const char *owner_key_pem;     /**< the host owner's policy public key (PEM) trusted to approve host
                                        states, or NULL (step "host-owner" NOT VERIFIED). Added in 0.2:
                                        callers built with the older struct_size leave it unset. */
} vtpm_verify_params;

/**
 * Verify a VM's evidence, step by step (see README "Hardware-rooted VM
 * identity"). Returns 0 when every step passed, TPM_FAIL (9) when one
 * failed, TPM_BAD_PARAMETER (3) for unusable parameters. *report_json (if
 * report_json is not NULL) receives the report as JSON, with the failing
 * step's id in "failed_step"; release it with vtpm_free().
 */
VTPM_API uint32_t vtpm_verify_evidence(const vtpm_verify_params *params, char **report_json);

/** Release a buffer returned by this library. */
VTPM_API void vtpm_free(void *p);

#ifdef __cplusplus
}
#endif

#endif /* VTPM_VTPM_H */
