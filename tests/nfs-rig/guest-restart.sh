#!/bin/sh
# Guest script of nfs_kernel_test.sh's restart check: runs INSIDE the VM,
# $1 = NFS mount point (a hard mount). Copies 96 MiB of files in while the
# host kills nfsd with SIGKILL and starts it again; the copy must finish and
# every file must read back intact (from the server: caches dropped).
# Prints COPY-START / COPY-DONE for the host, "CHECK name ok|FAIL",
# "RESULT checks_failed=N"; exit status = N.
M=${1:-/mnt}
W=$M/restart
L=/tmp/restart
fails=0
check() { if [ "$2" = 0 ]; then echo "CHECK $1 ok"; else echo "CHECK $1 FAIL"; fails=$((fails+1)); fi; }
mkdir -p $L
i=0; while [ $i -lt 48 ]; do
    dd if=/dev/urandom of=$L/f$i bs=1M count=2 2>/dev/null
    i=$((i+1))
done
(cd $L && md5sum f* > /tmp/restart.sums)
mkdir "$W"; check mkdir $?
echo "COPY-START"
cp $L/f* "$W/"; check copy_through_nfsd_restart $?
sync; check sync $?
echo "COPY-DONE"
echo 3 > /proc/sys/vm/drop_caches
(cd "$W" && md5sum -c /tmp/restart.sums > /tmp/restart.check 2>&1); r=$?
[ $r = 0 ] || grep -v ': OK$' /tmp/restart.check
check every_file_intact $r
n=$(ls "$W" | wc -l); [ "$n" = 48 ]; check all_48_files_listed $?
rm -r "$W"; check rm_r $?
echo "RESULT checks_failed=$fails"
exit $fails
