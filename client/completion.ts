/**
 * `handover completion bash|zsh`: a completion script generated from the commander program itself, so every
 * command, subcommand and flag the CLI knows is completed and nothing is listed twice by hand.
 *   bash: source <(handover completion bash)         (or save it under /etc/bash_completion.d/handover)
 *   zsh:  handover completion zsh > "${fpath[1]}/_handover"; then compinit
 */
import type { Command } from 'commander';
import { GLOBAL_OPTIONS } from './cli';

/** Every command path ("switchover", "backup run") with its long flags, plus the top-level words. */
export function completionTable(program: Command): { top: string[]; paths: Map<string, string[]> } {
  const paths = new Map<string, string[]>();
  const walk = (cmd: Command, prefix: string[]) => {
    for (const sub of cmd.commands) {
      const p = [...prefix, sub.name()];
      const flags = sub.options.map((o) => o.long).filter((f): f is string => !!f);
      const subs = sub.commands.map((c) => c.name());
      paths.set(p.join(' '), [...subs, ...flags, '--help']);
      walk(sub, p);
    }
  };
  walk(program, []);
  const top = [...program.commands.map((c) => c.name()), '--version', '--help', ...GLOBAL_OPTIONS.map((g) => g.flag)];
  return { top, paths };
}

export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const { top, paths } = completionTable(program);
  const cases = [...paths].map(([p, words]) => `    "${p}") words="${words.join(' ')}" ;;`).join('\n');
  // One function for both shells: the command path is the leading words that are not flags; zsh runs it
  // through bashcompinit.
  const body = `_handover() {
  local cur path w i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  path=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    case " ${[...paths.keys()].map((k) => k.replace(/ /g, '_')).join(' ')} " in
      *" \${path:+\${path}_}$w "*) path="\${path:+$path }$w" ;;
    esac
  done
  local words
  case "$path" in
${cases}
    *) words="${top.join(' ')}" ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -o default -F _handover handover`;
  if (shell === 'bash') return `# bash completion for handover (handover completion bash)\n${body}`;
  return `#compdef handover\n# zsh completion for handover (handover completion zsh): bash-style, through bashcompinit\nautoload -U +X bashcompinit && bashcompinit\n${body}`;
}
