/*
 * floor.c - libpcap read floor for the kaswatch benchmark.
 *
 * Reads a pcap file with pcap_open_offline + pcap_next_ex and touches every
 * packet minimally (caplen + first byte into a volatile sum) so the loop
 * cannot be optimised away. This is the cost any libpcap-based reader pays
 * before doing real work; kaswatch's time is reported as a ratio to it.
 *
 * Build: gcc -O2 -o target/floor bench/floor.c -lpcap
 * Usage: target/floor FILE.pcap
 */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdint.h>

int main(int argc, char **argv)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.pcap\n", argv[0]);
        return 2;
    }
    pcap_t *p = pcap_open_offline(argv[1], errbuf);
    if (!p) {
        fprintf(stderr, "floor: %s\n", errbuf);
        return 1;
    }
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t packets = 0, bytes = 0;
    volatile uint64_t sum = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        packets++;
        bytes += h->caplen;
        sum += h->caplen + (h->caplen ? data[0] : 0);
    }
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "floor: %s\n", pcap_geterr(p));
        pcap_close(p);
        return 1;
    }
    pcap_close(p);
    printf("packets %llu bytes %llu sum %llu\n", (unsigned long long)packets,
           (unsigned long long)bytes, (unsigned long long)sum);
    return 0;
}
