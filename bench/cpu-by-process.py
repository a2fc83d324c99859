#!/usr/bin/env python3
"""
CPU time per process of a benchmark, for a machine that is shared (wall times distorted by other load).

  python3 bench/cpu-by-process.py OUT -- npm run bench -- backup-mysql-physical --json --mib 250
  python3 bench/cpu-by-process.py --report OUT

The first form runs the command (its stderr lines are kept in OUT.err with their time, stdout in OUT.out),
and every 0.2 s records utime+stime (/proc/<pid>/stat) of each of its descendants in OUT.samples. The
report prints, for backup-mysql-physical, the CPU seconds of every process during each take (the lifetime of
mariadb-dump / mariadb-backup --backup) and each restore (between the bench's log lines that end the backup
run and the restore). A process that exits between two samples loses at most its last 0.2 s, so the
figures of short-lived tools (mbstream, --prepare, a scratch mariadbd) are lower bounds.
"""
import json
import os
import subprocess
import sys
import threading
import time

HZ = os.sysconf('SC_CLK_TCK')


def stat(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            s = f.read()
    except OSError:
        return None
    i = s.rindex(')')
    rest = s[i + 2:].split()
    return s[s.index('(') + 1:i], int(rest[1]), int(rest[11]) + int(rest[12])  # comm, ppid, utime+stime


LABELS = {}


def label(pid, comm):
    if pid not in LABELS:
        try:
            with open(f'/proc/{pid}/cmdline') as f:
                argv = f.read().split('\0')
        except OSError:
            argv = []
        extra = [a for a in argv[1:] if a in ('--backup', '--prepare', '-d', '-x') or a.startswith('--skip-grant-tables')]
        LABELS[pid] = ' '.join([comm] + extra)
    return LABELS[pid]


def sample(root, out):
    with open(out, 'w') as f:
        while True:
            procs = {}
            for d in os.listdir('/proc'):
                if d.isdigit():
                    st = stat(int(d))
                    if st:
                        procs[int(d)] = st
            if root not in procs:
                return
            kids = {}
            for p, st in procs.items():
                kids.setdefault(st[1], []).append(p)
            seen, stack = {}, [root]
            while stack:
                p = stack.pop()
                if p in procs:
                    seen[p] = [label(p, procs[p][0]), procs[p][2]]
                stack.extend(kids.get(p, []))
            f.write(json.dumps({'t': time.time(), 'p': seen}) + '\n')
            f.flush()
            time.sleep(0.2)


def run(out, cmd):
    with open(out + '.out', 'w') as so, open(out + '.err', 'w') as se:
        p = subprocess.Popen(cmd, stdout=so, stderr=subprocess.PIPE, text=True)
        t = threading.Thread(target=sample, args=(p.pid, out + '.samples'), daemon=True)
        t.start()
        for line in p.stderr:
            se.write(f'{time.time():.2f} {line}')
            se.flush()
        return p.wait()


def report(out):
    samples = [json.loads(l) for l in open(out + '.samples')]
    life = {}
    for s in samples:
        for pid, (lab, _ticks) in s['p'].items():
            life.setdefault(pid, {'lab': lab, 'first': s['t']})['last'] = s['t']

    def at(t):
        best = samples[0]
        for s in samples:
            if s['t'] > t:
                break
            best = s
        return best

    def cpu(t0, t1):
        a, res, last = at(t0), {}, {}
        for s in samples:
            if t0 <= s['t'] <= t1:
                last.update(s['p'])
        for pid, (lab, ticks) in last.items():
            if lab.startswith('mariadbd'):
                lab = 'scratch mariadbd' if life[pid]['first'] >= t0 - 0.5 else 'source mariadbd'
            res[lab] = res.get(lab, 0) + (ticks - (a['p'][pid][1] if pid in a['p'] else 0)) / HZ
        return res

    def show(name, t0, t1):
        c = cpu(t0, t1)
        parts = ', '.join(f'{k} {v:.2f}' for k, v in sorted(c.items(), key=lambda kv: -kv[1]) if v >= 0.05)
        print(f'{name}: wall {t1 - t0:.1f} s, CPU {sum(c.values()):.2f} s: {parts}')

    for e in sorted(life.values(), key=lambda e: e['first']):
        if e['lab'] in ('mariadb-dump', 'mariadb-backup --backup'):
            show('take ' + e['lab'].split()[0], e['first'], e['last'])
    marks = []  # (time, method, whether it ends a restore)
    for l in open(out + '.err'):
        t, _, m = l.partition(' ')
        if m.startswith(('[bench] logical', '[bench] physical')) and (m.split()[1].endswith(':') or 'restore --scratch' in m):
            marks.append((float(t), m.split()[1].rstrip(':'), 'restore --scratch' in m))
    for (t0, _, _), (t1, what, ends_restore) in zip(marks, marks[1:]):
        if ends_restore:
            show('restore ' + what, t0, t1)

if __name__ == '__main__':
    if sys.argv[1] == '--report':
        report(sys.argv[2])
    else:
        sys.exit(run(sys.argv[1], sys.argv[sys.argv.index('--') + 1:]))
