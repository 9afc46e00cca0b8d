#!/usr/bin/perl
# static.pl DIR PORT ADDR: a small static file server for bench/ports.sh (the
# default image has perl, not python). HTTP/1.1 keep-alive, GET and HEAD, one
# child per connection, files sent in 256 KiB blocks with a Content-Length,
# TCP_NODELAY.
use strict;
use warnings;
use IO::Socket::IP;
use Socket qw(IPPROTO_TCP TCP_NODELAY);

my ($dir, $port, $addr) = @ARGV;
my $srv = IO::Socket::IP->new(LocalAddr => $addr, LocalPort => $port, Listen => 1024,
                              ReuseAddr => 1) or die "listen: $!";
$SIG{CHLD} = 'IGNORE';

sub send_all {
    my ($c, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($c, $data, length($data) - $off, $off);
        return 0 unless $n;
        $off += $n;
    }
    return 1;
}

sub serve {
    my $c = shift;
    my $in = '';
    while (1) {
        my $end;
        while (($end = index($in, "\r\n\r\n")) < 0) {
            my $n = sysread($c, $in, 65536, length $in);
            return unless $n;
        }
        my $head = substr($in, 0, $end + 4, '');
        my ($method, $path) = $head =~ m{^(\S+) (\S+)};
        $path =~ s/\?.*//;
        my $file = "$dir$path";
        if ($path =~ m{\.\.} || !-f $file || !open(my $fh, '<:raw', $file)) {
            send_all($c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n") or return;
            next;
        } else {
            my $size = -s $fh;
            my $out = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                . "Content-Length: $size\r\n\r\n";
            # a small file goes out with its head, in one write
            sysread($fh, $out, 262144, length $out) if $method ne 'HEAD';
            send_all($c, $out) or return;
            if ($method ne 'HEAD') {
                while (sysread($fh, my $block, 262144)) { send_all($c, $block) or return; }
            }
            close $fh;
        }
    }
}

while (my $c = $srv->accept) {
    next if fork;
    # answers are single writes: no reason to wait for the peer's ACK
    setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);
    serve($c);
    exit 0;
}
