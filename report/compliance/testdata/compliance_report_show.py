# The Data class of the seed's compliance_report.py (seeds/000_…, OCI OS
# Management), its statements copied unchanged; the seed's text lost the
# indentation, restored here (the blank line after each instance, not
# after each update). The test feeds it a report as JSON on stdin and
# compares what it prints with WriteText.
import json
import sys


class Data(object):
    def __init__(self):
        self.managed_instance_group_id = None
        self.total_instances = 0
        self.vulnerable_instances = []

    def show_overview(self):
        print()
        print(' Patch Compliance Report Sample')
        print(' ==============================')
        print()
        if self.managed_instance_group_id is not None:
            print('Managed Instance Group ID: {0}'.format(self.managed_instance_group_id))
        vulnerable_instances = len(self.vulnerable_instances) if len(self.vulnerable_instances) > 0 else 'None'
        linking_verb = 'are' if len(self.vulnerable_instances) > 1 else 'is'
        plural = 's' if self.total_instances > 1 else ''
        print('\nDetected out of {0} managed instance{1}, {2} {3} '
              'missing security patches!\n'.format(self.total_instances, plural, vulnerable_instances, linking_verb))

    def show_details(self):
        for instance in self.vulnerable_instances:
            print('Managed Instance {0} ({1})'.format(instance.get('display_name'), instance.get('id')))
            print(' has the following outstanding security patches:')
            for update in instance.get('security_updates', []):
                print(' {0}'.format(update.get('display_name')))
                if update.get('related_cves', None) is not None:
                    print(' CVEs:', end='')
                    num_cve = 0
                    num_cves = len(update.get('related_cves', []))
                    cve_line = ''
                    for cve in update.get('related_cves', []):
                        num_cve += 1
                        cve_line = '{0} {1:<17}'.format(cve_line, cve + ',')
                        if len(cve_line) >= 65:
                            if num_cve < num_cves:
                                print(cve_line.rstrip(' '))
                                print(' ', end='')
                            else:
                                print(cve_line.rstrip(', '))
                            cve_line = ''
                    if cve_line != '':
                        print(cve_line.rstrip(', '))
            print()


def main():
    rep = json.load(sys.stdin)
    data = Data()
    data.managed_instance_group_id = rep['scope'].get('group') or None
    data.total_instances = rep['total_instances']
    for inst in rep['vulnerable_instances']:
        for u in inst['security_updates']:
            # An empty list prints as None does (see writeDetails).
            if not u['related_cves']:
                u['related_cves'] = None
        data.vulnerable_instances.append(inst)
    data.show_overview()
    if rep['details']:
        data.show_details()


main()
