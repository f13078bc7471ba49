import csv, datetime, sys, os, re
def ts(l): return datetime.datetime.strptime(l[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()*1000
for run in sys.argv[1:]:
    raw=os.path.join(run,"raw"); pts=[]
    for f in csv.DictReader(open(os.path.join(raw,"arbiter-faults.csv"))):
        heal=int(f["heal_ms"]); lines=open(os.path.join(raw,f"arbiter-m{f['endpoint']}.log"),errors="replace").read().splitlines()
        for l in lines:
            if "Raft member http" in l and l[:4]=="2026" and ts(l)>=heal:
                c=int(re.search(r"committed (\d+)",l).group(1)); pts.append((c, round(ts(l)-heal))); break
    pts.sort(); print(os.path.basename(run), pts)
