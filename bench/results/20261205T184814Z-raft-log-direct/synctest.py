import os, time, mmap, statistics
d='/work/main/bench/.synctest'; os.makedirs(d, exist_ok=True)
p=d+'/f'
with open(p,'wb') as f: f.write(b'\0'*(1<<20))
buf=mmap.mmap(-1,4096); buf.write(b'x'*4096)
def run(name, flags, after=None, reopen=False, n=400):
    ts=[]
    fd=os.open(p, flags)
    for i in range(n):
        t=time.perf_counter()
        if reopen: fd=os.open(p, flags)
        os.pwrite(fd, buf, (i%200)*4096)
        if after: after(fd)
        if reopen: os.close(fd)
        ts.append((time.perf_counter()-t)*1000)
    if not reopen: os.close(fd)
    ts.sort(); print(f"{name:40s} p50 {ts[n//2]:.3f} mean {statistics.mean(ts):.3f} p99 {ts[int(n*.99)]:.3f} ms")
W=os.O_WRONLY
run("O_SYNC pwrite (reopen each)", W|os.O_SYNC, reopen=True)
run("O_SYNC pwrite", W|os.O_SYNC)
run("O_DSYNC pwrite", W|os.O_DSYNC)
run("O_DIRECT|O_DSYNC pwrite (reopen)", W|os.O_DIRECT|os.O_DSYNC, reopen=True)
run("O_DIRECT|O_DSYNC pwrite", W|os.O_DIRECT|os.O_DSYNC)
run("pwrite+fdatasync", W, after=os.fdatasync)
run("pwrite+fsync", W, after=os.fsync)
