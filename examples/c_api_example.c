/*
 * A hypervisor tool using libvtpm's C ABI: power on a vTPM on a state
 * directory, start it, ask for random bytes, export its permanent state in
 * swtpm's migration format. Build with:
 *   cc c_api_example.c $(pkg-config --cflags --libs vtpm) -o c_api_example
 */
#include <stdio.h>
#include <stdlib.h>
#include <vtpm/vtpm.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    vtpm_options o = {0};
    o.struct_size = sizeof o;
    o.tpm_version = VTPM_TPM_2_0;
    o.state_dir = argv[1];

    vtpm_t *tpm = NULL;
    uint32_t rc = vtpm_open(&o, &tpm);
    if (rc) {
        fprintf(stderr, "vtpm_open: 0x%x %s\n", rc, vtpm_open_error());
        return 1;
    }
    if ((rc = vtpm_init(tpm, 0))) {
        fprintf(stderr, "vtpm_init: 0x%x %s\n", rc, vtpm_last_error(tpm));
        vtpm_close(tpm);
        return 1;
    }
    /* TPM2_Startup(SU_CLEAR), then TPM2_GetRandom(8) */
    const uint8_t startup[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0};
    const uint8_t getrandom[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 8};
    uint8_t rsp[4200];
    size_t n = 0;
    vtpm_process(tpm, startup, sizeof startup, rsp, sizeof rsp, &n);
    vtpm_process(tpm, getrandom, sizeof getrandom, rsp, sizeof rsp, &n);
    unsigned trc = (unsigned)rsp[6] << 24 | (unsigned)rsp[7] << 16 | (unsigned)rsp[8] << 8 | rsp[9];
    printf("libvtpm %s: GetRandom rc=0x%x, %zu response bytes\n", vtpm_version(), trc, n);

    uint8_t *blob = NULL;
    size_t blob_len = 0;
    uint32_t flags = 0;
    if ((rc = vtpm_get_state_blob(tpm, VTPM_BLOB_PERMANENT, 1, &blob, &blob_len, &flags))) {
        fprintf(stderr, "vtpm_get_state_blob: 0x%x %s\n", rc, vtpm_last_error(tpm));
        vtpm_close(tpm);
        return 1;
    }
    printf("permanent state blob: %zu bytes\n", blob_len);
    vtpm_free(blob);
    vtpm_close(tpm);
    return trc == 0 && n == 20 ? 0 : 1;
}
