import os, time, mmap, sys, statistics
i=int(sys.argv[1]); d='/work/main/bench/.synctest'; os.makedirs(d, exist_ok=True)
p=f'{d}/f{i}'
with open(p,'wb') as f: f.write(b'\0'*(1<<20))
buf=mmap.mmap(-1,4096); buf.write(b'x'*4096)
fd=os.open(p, os.O_WRONLY|os.O_DSYNC); ts=[]; end=time.time()+3
while time.time()<end:
    t=time.perf_counter(); os.pwrite(fd, buf, (len(ts)%200)*4096); ts.append((time.perf_counter()-t)*1000)
ts.sort(); print(f"proc {i}: n {len(ts)} p50 {ts[len(ts)//2]:.3f} mean {statistics.mean(ts):.3f}")
